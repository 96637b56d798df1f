"""A node registers with an activation, proves itself with its RSA key, and then
acts with short-lived credentials that reach only its own data."""

import base64
import datetime
import json

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from conftest import REGION, post, raw


class Node:
    """What an agent does at registration, written with botocore and cryptography."""

    def __init__(self, server):
        self.server = server
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()
        self.instance_id = None

    def register(self, activation_id: str, code: str):
        body = json.dumps({
            "ActivationCode": code,
            "ActivationId": activation_id,
            "PublicKey": self.public_key,
            "PublicKeyType": "Rsa",
            "Fingerprint": "fingerprint-1",
        }).encode()
        return raw(self.server, "AmazonSSM.RegisterManagedInstance", body)

    def rsa_signed(self, target: str, fields: dict):
        """Signs like SigV4 but with RSA-PSS over the string to sign."""
        body = json.dumps(fields).encode()
        request = botocore.awsrequest.AWSRequest(
            method="POST", url=self.server.url + "/", data=body,
            headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
        )
        now = datetime.datetime.now(datetime.timezone.utc)
        request.context["timestamp"] = now.strftime("%Y%m%dT%H%M%SZ")
        credentials = botocore.credentials.Credentials(self.instance_id, "unused")
        signer = botocore.auth.SigV4Auth(credentials, "ssm", REGION)
        request.headers["X-Amz-Date"] = request.context["timestamp"]
        canonical = signer.canonical_request(request)
        string_to_sign = signer.string_to_sign(request, canonical)
        signature = self.key.sign(
            string_to_sign.encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256(),
        )
        scope = signer.credential_scope(request)
        signed_headers = signer.signed_headers(signer.headers_to_sign(request))
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.instance_id}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={base64.b64encode(signature).decode()}"
        )
        return post(request)


@pytest.fixture(scope="module")
def activation(server):
    return server.client().create_activation(
        IamRole="SSMServiceRole", RegistrationLimit=2, DefaultInstanceName="edge",
        Tags=[{"Key": "Finance", "Value": "WebServers"}],
    )


def test_register_then_obtain_credentials(server, activation):
    node = Node(server)
    status, _, body = node.register(activation["ActivationId"], activation["ActivationCode"])
    assert status == 200
    node.instance_id = body["InstanceId"]
    assert node.instance_id.startswith("mi-") and len(node.instance_id) == 20

    status, _, token = node.rsa_signed("AmazonSSM.RequestManagedInstanceRoleToken",
                                       {"Fingerprint": "fingerprint-1"})
    assert status == 200, token
    assert token["UpdateKeyPair"] is False
    assert token["AccessKeyId"].startswith("ASIA")

    client = boto3.client(
        "ssm", endpoint_url=server.url, region_name=REGION,
        aws_access_key_id=token["AccessKeyId"],
        aws_secret_access_key=token["SecretAccessKey"],
        aws_session_token=token["SessionToken"],
    )
    document = client.get_document(Name="AWS-RunShellScript")
    assert document["Name"] == "AWS-RunShellScript"

    key = (token["AccessKeyId"], token["SecretAccessKey"])
    own = json.dumps({"InstanceId": node.instance_id, "AgentName": "tagrun-agent",
                      "AgentVersion": "0.1.0", "PlatformType": "Linux"}).encode()
    other = json.dumps({"InstanceId": "i-0123456789abcdef0", "AgentName": "tagrun-agent",
                        "AgentVersion": "0.1.0"}).encode()
    session = {"X-Amz-Security-Token": token["SessionToken"]}
    own_status, _, _ = raw(server, "AmazonSSM.UpdateInstanceInformation", own, *key, session)
    other_status, _, denied = raw(server, "AmazonSSM.UpdateInstanceInformation", other, *key,
                                  session)
    assert own_status == 200
    assert other_status == 400 and denied["__type"] == "AccessDeniedException"

    info = server.client().describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [node.instance_id]}]
    )["InstanceInformationList"][0]
    assert info["PingStatus"] == "Online"
    assert info["ActivationId"] == activation["ActivationId"]
    assert info["Name"] == "edge"
    tags = server.client().list_tags_for_resource(ResourceType="ManagedInstance",
                                                  ResourceId=node.instance_id)["TagList"]
    assert tags == [{"Key": "Finance", "Value": "WebServers"}]


def test_credentials_without_the_session_token_are_refused(server, activation):
    node = Node(server)
    _, _, body = node.register(activation["ActivationId"], activation["ActivationCode"])
    node.instance_id = body["InstanceId"]
    _, _, token = node.rsa_signed("AmazonSSM.RequestManagedInstanceRoleToken", {})

    status, _, error = raw(server, "AmazonSSM.GetDocument", b'{"Name":"AWS-RunShellScript"}',
                           token["AccessKeyId"], token["SecretAccessKey"])

    assert status == 400
    assert error["__type"] == "UnrecognizedClientException"


def test_registration_limit_and_bad_codes(server, activation):
    limited = Node(server).register(activation["ActivationId"], activation["ActivationCode"])
    wrong = Node(server).register(activation["ActivationId"], "x" * 20)

    assert limited[2]["__type"] == "InvalidActivation"
    assert wrong[2]["__type"] == "InvalidActivation"


def test_a_signature_by_another_key_is_refused(server):
    ssm = server.client()
    created = ssm.create_activation(IamRole="SSMServiceRole")
    node = Node(server)
    _, _, body = node.register(created["ActivationId"], created["ActivationCode"])
    node.instance_id = body["InstanceId"]
    node.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    status, _, error = node.rsa_signed("AmazonSSM.RequestManagedInstanceRoleToken", {})

    assert status == 400
    assert error["__type"] == "InvalidSignatureException"


def test_key_rotation_and_deregistration(server):
    ssm = server.client()
    created = ssm.create_activation(IamRole="SSMServiceRole")
    node = Node(server)
    _, _, body = node.register(created["ActivationId"], created["ActivationCode"])
    node.instance_id = body["InstanceId"]
    old_key = node.key
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = new_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    status, _, _ = node.rsa_signed("AmazonSSM.UpdateManagedInstancePublicKey", {
        "NewPublicKey": base64.b64encode(der).decode(), "NewPublicKeyType": "Rsa"})
    node.key = new_key
    fresh, _, _ = node.rsa_signed("AmazonSSM.RequestManagedInstanceRoleToken", {})
    node.key = old_key
    stale, _, _ = node.rsa_signed("AmazonSSM.RequestManagedInstanceRoleToken", {})

    assert (status, fresh, stale) == (200, 200, 400)
    ssm.deregister_managed_instance(InstanceId=node.instance_id)
    listed = ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [node.instance_id]}])
    assert listed["InstanceInformationList"] == []
    node.key = new_key
    gone, _, error = node.rsa_signed("AmazonSSM.RequestManagedInstanceRoleToken", {})
    assert gone == 400 and error["__type"] == "UnrecognizedClientException"
