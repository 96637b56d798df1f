"""Activations, node reports, instance information and tags."""

import json
import time

import pytest
from botocore.exceptions import ClientError

from conftest import NODES, raw


def report(server, as_node: str, **fields):
    """UpdateInstanceInformation is agent-only: botocore has no model for it."""
    key, secret = NODES[as_node]
    body = json.dumps(fields).encode()
    return raw(server, "AmazonSSM.UpdateInstanceInformation", body, key, secret)


def test_activation_lifecycle(server):
    ssm = server.client()

    created = ssm.create_activation(
        IamRole="SSMServiceRole",
        DefaultInstanceName="edge",
        RegistrationLimit=3,
        Tags=[{"Key": "Env", "Value": "edge"}],
    )
    listed = ssm.describe_activations(
        Filters=[{"FilterKey": "ActivationIds", "FilterValues": [created["ActivationId"]]}]
    )["ActivationList"]
    ssm.delete_activation(ActivationId=created["ActivationId"])

    assert len(created["ActivationCode"]) == 20
    assert listed[0]["RegistrationLimit"] == 3
    assert listed[0]["Expired"] is False
    assert listed[0]["Tags"] == [{"Key": "Env", "Value": "edge"}]
    with pytest.raises(ClientError) as excinfo:
        ssm.delete_activation(ActivationId=created["ActivationId"])
    assert excinfo.value.response["Error"]["Code"] == "InvalidActivationId"


def test_activation_needs_a_known_role(server):
    with pytest.raises(ClientError) as excinfo:
        server.client().create_activation(IamRole="NoSuchRole")

    assert excinfo.value.response["Error"]["Code"] == "ValidationException"


def test_node_reports_its_platform_and_tags(server):
    status, _, _ = report(
        server,
        "i-0123456789abcdef0",
        InstanceId="i-0123456789abcdef0",
        AgentName="tagrun-agent",
        AgentVersion="0.1.0",
        PlatformType="Linux",
        PlatformName="Debian GNU/Linux",
        PlatformVersion="12",
        ComputerName="web-1",
        IPAddress="127.0.0.1",
    )
    assert status == 200

    info = server.client().describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": ["i-0123456789abcdef0"]}]
    )["InstanceInformationList"]

    assert info[0]["PingStatus"] == "Online"
    assert info[0]["PlatformName"] == "Debian GNU/Linux"
    assert info[0]["ResourceType"] == "EC2Instance"
    assert abs(info[0]["LastPingDateTime"].timestamp() - time.time()) < 60


def test_a_node_cannot_report_for_another(server):
    status, _, body = report(server, "i-0123456789abcdef0", InstanceId="i-0fedcba9876543210",
                             AgentName="x", AgentVersion="0.1.0")

    assert status == 400
    assert body["__type"] == "AccessDeniedException"


def test_agent_tags_merge_under_administrator_tags(server):
    status, _, _ = report(server, "i-0fedcba9876543210", InstanceId="i-0fedcba9876543210",
                          Tags=[{"Key": "Env", "Value": "dev"}, {"Key": "Role", "Value": "db"}])

    tags = server.client().list_tags_for_resource(
        ResourceType="ManagedInstance", ResourceId="i-0fedcba9876543210")["TagList"]

    assert status == 200
    assert {"Key": "Role", "Value": "db"} in tags
    assert {"Key": "Env", "Value": "prod"} in tags


def test_nodes_filter_by_tag(server):
    ssm = server.client()

    tagged = ssm.describe_instance_information(Filters=[{"Key": "tag:Env", "Values": ["prod"]}])
    other = ssm.describe_instance_information(Filters=[{"Key": "tag:Env", "Values": ["dev"]}])

    ids = {i["InstanceId"] for i in tagged["InstanceInformationList"]}
    assert ids == {"i-0123456789abcdef0", "i-0fedcba9876543210"}
    assert other["InstanceInformationList"] == []


def test_tags_on_nodes_and_documents(server):
    ssm = server.client()
    ssm.add_tags_to_resource(ResourceType="ManagedInstance", ResourceId="i-0fedcba9876543210",
                             Tags=[{"Key": "Team", "Value": "ops"}])
    ssm.remove_tags_from_resource(ResourceType="ManagedInstance",
                                  ResourceId="i-0fedcba9876543210", TagKeys=["Env"])

    tags = ssm.list_tags_for_resource(ResourceType="ManagedInstance",
                                      ResourceId="i-0fedcba9876543210")["TagList"]

    assert {"Key": "Team", "Value": "ops"} in tags
    assert {"Key": "Env", "Value": "prod"} not in tags


def test_invalid_tags_and_resources(server):
    ssm = server.client()

    with pytest.raises(ClientError) as bad_id:
        ssm.list_tags_for_resource(ResourceType="ManagedInstance", ResourceId="mi-00000000000000000")
    with pytest.raises(ClientError) as bad_type:
        ssm.list_tags_for_resource(ResourceType="Parameter", ResourceId="x")
    with pytest.raises(ClientError) as bad_tag:
        ssm.add_tags_to_resource(ResourceType="ManagedInstance", ResourceId="i-0123456789abcdef0",
                                 Tags=[{"Key": "bad;key", "Value": "x"}])

    assert bad_id.value.response["Error"]["Code"] == "InvalidResourceId"
    assert bad_type.value.response["Error"]["Code"] == "InvalidResourceType"
    assert bad_tag.value.response["Error"]["Code"] == "ValidationException"


def test_deregister_unknown_node(server):
    with pytest.raises(ClientError) as excinfo:
        server.client().deregister_managed_instance(InstanceId="mi-00000000000000000")

    assert excinfo.value.response["Error"]["Code"] == "InvalidInstanceId"
