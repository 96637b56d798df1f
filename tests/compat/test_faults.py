"""The server killed with SIGKILL in the middle of a command loses nothing."""

import pytest

from conftest import Server
from fakenode import FakeNode

WEB = "i-0123456789abcdef0"
DB = "i-0fedcba9876543210"


@pytest.fixture
def directory(tmp_path):
    return tmp_path


def test_commands_and_replies_survive_a_killed_server(directory):
    first = Server(directory)
    port = first.url.rsplit(":", 1)[1]
    ssm = first.client()
    command = ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[WEB, DB],
                               Parameters={"commands": ["echo survived"]})["Command"]
    web = FakeNode(first, WEB)
    web.run(web.poll_one(), stdout="before\n")
    db_message = FakeNode(first, DB).poll_one()
    FakeNode(first, DB).reply(db_message["MessageId"], "InProgress")

    first.kill()
    second = Server(directory, listen=f"127.0.0.1:{port}")
    try:
        ssm = second.client()
        db = FakeNode(second, DB)
        db.run(db_message, stdout="after\n")

        before = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=WEB)
        after = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=DB)
        listed = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]
        assert before["StandardOutputContent"] == "before\n"
        assert after["StandardOutputContent"] == "after\n"
        assert (listed["Status"], listed["CompletedCount"]) == ("Success", 2)
    finally:
        second.stop()


def test_an_unacknowledged_message_is_delivered_after_a_restart(directory):
    first = Server(directory)
    port = first.url.rsplit(":", 1)[1]
    command = first.client().send_command(DocumentName="AWS-RunShellScript", InstanceIds=[WEB],
                                          Parameters={"commands": ["true"]})["Command"]

    first.kill()
    second = Server(directory, listen=f"127.0.0.1:{port}")
    try:
        node = FakeNode(second, WEB)
        message = node.poll_one()
        node.run(message)
        result = second.client().get_command_invocation(CommandId=command["CommandId"],
                                                        InstanceId=WEB)
        assert message["MessageId"].split(".")[2] == command["CommandId"]
        assert result["Status"] == "Success"
    finally:
        second.stop()
