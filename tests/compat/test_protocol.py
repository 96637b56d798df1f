"""The wire protocol itself: signatures, error shapes, bad input."""

import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import raw


ADMIN = ("AKIAEXAMPLEADMIN0001", "admin-secret")


def test_unsigned_request_is_refused(server):
    status, _, body = raw(server, "AmazonSSM.ListDocuments", b"{}")

    assert status == 400
    assert body["__type"] == "MissingAuthenticationTokenException"


def test_unknown_key_and_wrong_secret(server):
    _, _, unknown = raw(server, "AmazonSSM.ListDocuments", b"{}", "AKIAUNKNOWN000000000", "x")
    _, _, wrong = raw(server, "AmazonSSM.ListDocuments", b"{}", ADMIN[0], "wrong")

    assert unknown["__type"] == "UnrecognizedClientException"
    assert wrong["__type"] == "InvalidSignatureException"


def test_errors_carry_a_request_id_and_aws_shape(server):
    status, headers, body = raw(server, "AmazonSSM.NoSuchOperation", b"{}", *ADMIN)

    assert status == 400
    assert body["__type"] == "UnknownOperationException"
    assert "Message" in body
    lowered = {k.lower(): v for k, v in headers.items()}
    assert len(lowered["x-amzn-requestid"]) == 36


def test_malformed_json_and_wrong_types(server):
    _, _, malformed = raw(server, "AmazonSSM.GetDocument", b"{nope", *ADMIN)
    _, _, wrong_type = raw(server, "AmazonSSM.GetDocument", b'{"Name": 5}', *ADMIN)

    assert malformed["__type"] == "SerializationException"
    assert wrong_type["__type"] == "SerializationException"


def test_signed_request_succeeds(server):
    status, headers, body = raw(server, "AmazonSSM.ListDocuments", b"{}", *ADMIN)

    assert status == 200
    assert any(d["Name"] == "AWS-RunShellScript" for d in body["DocumentIdentifiers"])


def test_control_channel_is_refused_so_agents_poll(server):
    request = urllib.request.Request(server.url + "/v1/control-channel/mi-0123456789abcdef0",
                                     data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=10)

    assert excinfo.value.code == 403
    assert b"<AccessDeniedException>" in excinfo.value.read()


def test_user_without_policies_is_denied(server):
    ssm = server.client("nobody")

    with pytest.raises(ClientError) as excinfo:
        ssm.describe_instance_information()

    assert excinfo.value.response["Error"]["Code"] == "AccessDeniedException"
    assert excinfo.value.response["Error"]["Message"] == (
        "User: arn:aws:iam::123456789012:user/nobody is not authorized to perform: "
        "ssm:DescribeInstanceInformation because no identity-based policy allows the "
        "ssm:DescribeInstanceInformation action"
    )
