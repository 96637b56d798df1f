"""Run Command end to end: boto3 and the aws CLI send, a fake node answers."""

import json
import threading

import pytest
from botocore.exceptions import ClientError

from fakenode import FakeNode

WEB = "i-0123456789abcdef0"
DB = "i-0fedcba9876543210"


def send(ssm, commands=("echo hi",), **kwargs):
    kwargs.setdefault("InstanceIds", [WEB])
    return ssm.send_command(DocumentName="AWS-RunShellScript",
                            Parameters={"commands": list(commands)}, **kwargs)["Command"]


def invocation(ssm, command_id, instance_id=WEB):
    return ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)


def test_a_command_end_to_end(server):
    ssm = server.client()
    command = send(ssm, Comment="first")
    assert command["Status"] == "Pending"
    assert command["MaxConcurrency"] == "50" and command["MaxErrors"] == "0"
    assert command["ExpiresAfter"].timestamp() - command["RequestedDateTime"].timestamp() == 7200

    node = FakeNode(server, WEB)
    message = node.poll_one()
    payload = json.loads(message["Payload"])
    assert message["MessageId"] == f"aws.ssm.{command['CommandId']}.{WEB}"
    assert message["Topic"].startswith("aws.ssm.sendCommand.")
    assert len(message["CreatedDate"]) == 24
    assert payload["Parameters"]["commands"] == ["echo hi"]
    assert payload["Parameters"]["executionTimeout"] == "3600"
    assert payload["DocumentContent"]["schemaVersion"] == "1.2"
    assert payload["CloudWatchOutputEnabled"] == "false"
    assert invocation(ssm, command["CommandId"])["Status"] == "InProgress"

    node.run(message, stdout="hi\n", stderr="warn\n")

    result = invocation(ssm, command["CommandId"])
    assert result["Status"] == "Success" and result["StatusDetails"] == "Success"
    assert result["ResponseCode"] == 0
    assert result["StandardOutputContent"] == "hi\n"
    assert result["StandardErrorContent"] == "warn\n"
    assert result["PluginName"] == "aws:runShellScript"
    assert result["ExecutionElapsedTime"].startswith("PT")
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["Status"], listed["CompletedCount"], listed["ErrorCount"]) == ("Success", 1, 0)
    detailed = ssm.list_command_invocations(CommandId=command["CommandId"], Details=True)
    plugin = detailed["CommandInvocations"][0]["CommandPlugins"][0]
    assert plugin["Output"] == "hi\n\n----------ERROR-------\nwarn\n"
    plain = ssm.list_command_invocations(CommandId=command["CommandId"])
    assert plain["CommandInvocations"][0]["CommandPlugins"] == []


def test_waiter_sees_the_command_finish(server):
    ssm = server.client()
    command = send(ssm)
    node = FakeNode(server, WEB)
    message = node.poll_one()
    finisher = threading.Timer(1.0, node.run, args=(message,), kwargs={"stdout": "done\n"})
    finisher.start()

    ssm.get_waiter("command_executed").wait(
        CommandId=command["CommandId"], InstanceId=WEB, WaiterConfig={"Delay": 1, "MaxAttempts": 20}
    )

    finisher.join()
    assert invocation(ssm, command["CommandId"])["StandardOutputContent"] == "done\n"


def test_failed_step_and_exit_code(server):
    ssm = server.client()
    command = send(ssm, commands=["exit 3"])
    node = FakeNode(server, WEB)

    node.run(node.poll_one(), status="Failed", code=3, stderr="boom\n")

    result = invocation(ssm, command["CommandId"])
    assert (result["Status"], result["ResponseCode"]) == ("Failed", 3)
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["Status"], listed["ErrorCount"]) == ("Failed", 1)


def test_unknown_invocation_and_bad_input(server):
    ssm = server.client()

    with pytest.raises(ClientError) as missing:
        ssm.get_command_invocation(CommandId="00000000-0000-0000-0000-000000000000",
                                   InstanceId=WEB)
    with pytest.raises(ClientError) as unknown_doc:
        ssm.send_command(DocumentName="No-Such-Doc", InstanceIds=[WEB])
    with pytest.raises(ClientError) as bad_params:
        ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[WEB],
                         Parameters={"nope": ["x"]})
    with pytest.raises(ClientError) as unknown_node:
        send(ssm, InstanceIds=["i-00000000000000000"])

    assert missing.value.response["Error"]["Code"] == "InvocationDoesNotExist"
    assert unknown_doc.value.response["Error"]["Code"] == "InvalidDocument"
    assert bad_params.value.response["Error"]["Code"] == "InvalidParameters"
    assert unknown_node.value.response["Error"]["Code"] == "InvalidInstanceId"


def test_tag_based_policy_denies_untagged_nodes(server):
    server.client().add_tags_to_resource(ResourceType="ManagedInstance", ResourceId=WEB,
                                         Tags=[{"Key": "Finance", "Value": "WebServers"}])
    finance = server.client("finance")

    command = finance.send_command(
        DocumentName="AWS-RunShellScript", Parameters={"commands": ["uptime"]},
        Targets=[{"Key": "tag-key", "Values": ["Env", "Finance"]}],
    )["Command"]
    with pytest.raises(ClientError) as direct:
        send(finance, InstanceIds=[DB])

    denied = invocation(finance, command["CommandId"], DB)
    assert (denied["Status"], denied["StatusDetails"]) == ("Failed", "AccessDenied")
    FakeNode(server, WEB).run(FakeNode(server, WEB).poll_one())
    listed = finance.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert listed["Status"] == "Success" and listed["ErrorCount"] == 0
    assert direct.value.response["Error"]["Code"] == "AccessDeniedException"
    assert direct.value.response["Error"]["Message"] == (
        "User: arn:aws:iam::123456789012:user/finance is not authorized to perform: "
        f"ssm:SendCommand on resource: arn:aws:ec2:us-east-1:123456789012:instance/{DB} "
        "because no identity-based policy allows the ssm:SendCommand action"
    )


def test_max_concurrency_and_max_errors(server):
    ssm = server.client()
    command = send(ssm, InstanceIds=[WEB, DB], MaxConcurrency="1", MaxErrors="0")
    web, db = FakeNode(server, WEB), FakeNode(server, DB)

    first = web.poll_one()
    assert db.poll() == []
    web.run(first, status="Failed", code=1)

    assert db.poll() == []
    second = invocation(ssm, command["CommandId"], DB)
    assert (second["Status"], second["StatusDetails"]) == ("Cancelled", "Terminated")
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["Status"], listed["CompletedCount"]) == ("Failed", 2)


def test_concurrency_releases_the_next_node(server):
    ssm = server.client()
    command = send(ssm, InstanceIds=[WEB, DB], MaxConcurrency="1", MaxErrors="1")
    web, db = FakeNode(server, WEB), FakeNode(server, DB)

    web.run(web.poll_one())
    db.run(db.poll_one())

    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["Status"], listed["CompletedCount"]) == ("Success", 2)


def test_cancel_a_running_command(server):
    ssm = server.client()
    command = send(ssm, commands=["sleep 100"])
    node = FakeNode(server, WEB)
    message = node.poll_one()
    node.reply(message["MessageId"], "InProgress")
    node.ack(message["MessageId"])

    ssm.cancel_command(CommandId=command["CommandId"])

    assert invocation(ssm, command["CommandId"])["StatusDetails"] == "Cancelling"
    cancel = node.poll_one()
    assert cancel["Topic"].startswith("aws.ssm.cancelCommand.")
    assert json.loads(cancel["Payload"]) == {"CancelMessageId": message["MessageId"]}
    assert cancel["MessageId"] != message["MessageId"]
    node.reply(cancel["MessageId"], "InProgress")
    node.ack(cancel["MessageId"])
    step = {"aws:runShellScript": FakeNode.step("Cancelled", 137)}
    node.reply(message["MessageId"], "Cancelled", step)
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert listed["Status"] == "Cancelled"
    assert invocation(ssm, command["CommandId"])["Status"] == "Cancelled"


def test_cancel_before_delivery_needs_no_node(server):
    ssm = server.client()
    command = send(ssm, InstanceIds=[DB])

    ssm.cancel_command(CommandId=command["CommandId"], InstanceIds=[DB])

    assert FakeNode(server, DB).poll() == []
    assert invocation(ssm, command["CommandId"], DB)["Status"] == "Cancelled"
    with pytest.raises(ClientError) as excinfo:
        ssm.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
    assert excinfo.value.response["Error"]["Code"] == "InvalidCommandId"


def test_unacknowledged_messages_are_delivered_again(server):
    ssm = server.client()
    command = send(ssm)
    node = FakeNode(server, WEB)

    first = node.poll_one(visibility=1)
    again = node.poll_one(visibility=1)
    node.run(again)

    assert first["MessageId"] == again["MessageId"]
    assert invocation(ssm, command["CommandId"])["Status"] == "Success"


def test_replies_are_idempotent_and_late_replies_change_nothing(server):
    ssm = server.client()
    command = send(ssm)
    node = FakeNode(server, WEB)
    message = node.poll_one()
    node.run(message, stdout="once\n")

    status, _, body = node.reply(message["MessageId"], "InProgress")

    assert status == 200
    result = invocation(ssm, command["CommandId"])
    assert result["Status"] == "Success" and result["StandardOutputContent"] == "once\n"


def test_a_node_reaches_only_its_own_messages(server):
    ssm = server.client()
    command = send(ssm, InstanceIds=[DB])
    web, db = FakeNode(server, WEB), FakeNode(server, DB)

    status, _, body = web.call("GetMessages", Destination=DB, MessagesRequestId="x" * 36)
    message_id = f"aws.ssm.{command['CommandId']}.{DB}"
    reply_status, _, reply_body = web.reply(message_id, "Success")
    ack_status, _, _ = web.ack(message_id)

    assert status == 400 and body["__type"] == "AccessDeniedException"
    assert reply_status == 400 and reply_body["__type"] == "InvalidMessageIdException"
    assert ack_status == 400
    db.run(db.poll_one())


def test_users_cannot_poll_messages(server):
    from conftest import USERS, raw
    key, secret, _ = USERS["admin"]
    status, _, body = raw(server, "EC2WindowsMessageDeliveryService.GetMessages",
                          json.dumps({"Destination": WEB, "MessagesRequestId": "x" * 36}).encode(),
                          key, secret, service="ec2messages")

    assert status == 400 and body["__type"] == "AccessDeniedException"


def test_output_is_cut_to_aws_limits(server):
    ssm = server.client()
    command = send(ssm)
    node = FakeNode(server, WEB)

    node.run(node.poll_one(), stdout="o" * 30000, stderr="e" * 9000)

    result = invocation(ssm, command["CommandId"])
    assert len(result["StandardOutputContent"]) == 24000
    assert len(result["StandardErrorContent"]) == 8000
    detailed = ssm.list_command_invocations(CommandId=command["CommandId"], Details=True)
    assert len(detailed["CommandInvocations"][0]["CommandPlugins"][0]["Output"]) == 2500


def test_aws_cli_sends_and_lists(server):
    sent = server.aws("ssm", "send-command", "--document-name", "AWS-RunShellScript",
                      "--targets", f"Key=InstanceIds,Values={DB}",
                      "--parameters", "commands=uname -a", "--comment", "from the CLI")
    command = json.loads(sent.stdout)["Command"]
    FakeNode(server, DB).run(FakeNode(server, DB).poll_one(), stdout="Linux\n")

    listed = server.aws("ssm", "list-command-invocations", "--command-id", command["CommandId"],
                        "--details")
    got = server.aws("ssm", "get-command-invocation", "--command-id", command["CommandId"],
                     "--instance-id", DB)

    invocations = json.loads(listed.stdout)["CommandInvocations"]
    assert invocations[0]["Status"] == "Success"
    assert json.loads(got.stdout)["StandardOutputContent"] == "Linux\n"
    filtered = server.aws("ssm", "list-commands", "--filters", "key=Status,value=Success")
    assert any(c["CommandId"] == command["CommandId"]
               for c in json.loads(filtered.stdout)["Commands"])


def test_targets_that_match_nothing(server):
    ssm = server.client()

    command = ssm.send_command(DocumentName="AWS-RunShellScript",
                               Parameters={"commands": ["true"]},
                               Targets=[{"Key": "tag:Nope", "Values": ["x"]}])["Command"]

    assert (command["Status"], command["StatusDetails"]) == ("Failed", "NoInstancesInTag")


def test_execution_timeout_is_reported_as_timed_out(server):
    ssm = server.client()
    command = send(ssm, commands=["sleep 9999"])
    node = FakeNode(server, WEB)

    node.run(node.poll_one(), status="TimedOut", code=137)

    result = invocation(ssm, command["CommandId"])
    assert (result["Status"], result["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
    assert (listed["Status"], listed["ErrorCount"]) == ("Failed", 1)


def test_list_commands_paginates_newest_first(server):
    ssm = server.client()
    sent = [send(ssm, InstanceIds=[DB], Comment=f"page {n}")["CommandId"] for n in range(3)]
    node = FakeNode(server, DB)
    for message in node.poll():
        node.run(message)

    pages = list(ssm.get_paginator("list_commands").paginate(
        InstanceId=DB, PaginationConfig={"PageSize": 2}))

    ids = [c["CommandId"] for page in pages for c in page["Commands"]]
    assert ids[:3] == list(reversed(sent))
    assert all(len(page["Commands"]) <= 2 for page in pages)


def test_deleted_messages_are_not_delivered_again(server):
    ssm = server.client()
    send(ssm, InstanceIds=[DB])
    node = FakeNode(server, DB)
    message = node.poll_one(visibility=1)

    status, _, _ = node.call("DeleteMessage", MessageId=message["MessageId"])

    assert status == 200
    assert node.poll(visibility=1) == []
