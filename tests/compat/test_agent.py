"""The real agent against the real server, driven with boto3 as a user would."""

import time

import pytest
from botocore.exceptions import WaiterError

from agents import AgentProcess


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def node(server, tmp_path_factory):
    agent = AgentProcess(server, tmp_path_factory.mktemp("agent"),
                         admin_tags={"Team": "web"}, own_tags={"Env": "e2e", "Team": "mine"})
    yield agent
    agent.stop()


def run(server, node, commands, timeout=60, **parameters):
    ssm = server.client()
    params = {"commands": commands, **{k: [v] for k, v in parameters.items()}}
    command = ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[node.instance_id],
                               Parameters=params)["Command"]
    return finished(server, node, command["CommandId"], timeout)


def finished(server, node, command_id, timeout=60):
    """The invocation once it has reached a final status (Cancelling is not one)."""
    ssm = server.client()
    try:
        ssm.get_waiter("command_executed").wait(
            CommandId=command_id, InstanceId=node.instance_id,
            WaiterConfig={"Delay": 1, "MaxAttempts": timeout})
    except WaiterError:
        pass

    def final():
        result = ssm.get_command_invocation(CommandId=command_id, InstanceId=node.instance_id)
        running = result["Status"] in ("Pending", "InProgress", "Delayed", "Cancelling")
        return None if running else result

    return wait_for(final, timeout, what=f"command {command_id} to finish")


def test_registers_and_reports_health_with_tags(server, node):
    ssm = server.client()

    info = wait_for(lambda: [i for i in ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [node.instance_id]}])["InstanceInformationList"]
        if i["PingStatus"] == "Online" and i.get("AgentVersion")], what="an Online node")[0]

    def tags():
        listed = ssm.list_tags_for_resource(ResourceType="ManagedInstance",
                                            ResourceId=node.instance_id)["TagList"]
        return {t["Key"]: t["Value"] for t in listed}

    assert info["PlatformType"] == "Linux" and info["ResourceType"] == "ManagedInstance"
    # The agent's own tags arrive with its first full health report; the
    # administrator's Team=web (from the activation) wins over the agent's Team=mine.
    merged = wait_for(lambda: tags() if "Env" in tags() else None, what="the agent's tags")
    assert merged == {"Team": "web", "Env": "e2e"}


def test_a_command_end_to_end(server, node):
    result = run(server, node, ["echo out", "echo err >&2", "echo $AWS_SSM_INSTANCE_ID"])

    assert result["Status"] == "Success", result
    assert result["StandardOutputContent"] == f"out\n{node.instance_id}\n"
    assert result["StandardErrorContent"] == "err\n"
    assert result["ResponseCode"] == 0


def test_failure_and_exit_codes(server, node):
    failed = run(server, node, ["exit 7"])
    exit_168 = run(server, node, ["echo before", "exit 168"])
    exit_169 = run(server, node, ["exit 169"])

    assert (failed["Status"], failed["ResponseCode"]) == ("Failed", 7)
    assert exit_168["Status"] == "Success"
    assert exit_169["Status"] == "Failed"


def test_execution_timeout_stops_the_process_group(server, node, tmp_path):
    marker = tmp_path / "child-alive"
    result = run(server, node, [f"(sleep 8; touch {marker}) &", "sleep 60"],
                 executionTimeout="5")

    assert (result["Status"], result["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    time.sleep(4)
    assert not marker.exists(), "a child of the timed-out step outlived it"


def test_commands_run_concurrently(server, node, tmp_path):
    ssm = server.client()
    barrier = tmp_path / "barrier"
    # Each command waits for the other to have started: only concurrency finishes both.
    first = ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[node.instance_id],
                             Parameters={"commands": [
                                 f"touch {barrier}.a",
                                 f"for i in $(seq 100); do [ -e {barrier}.b ] && exit 0; sleep 0.1; done",
                                 "exit 1"]})["Command"]
    second = ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[node.instance_id],
                              Parameters={"commands": [
                                  f"touch {barrier}.b",
                                  f"for i in $(seq 100); do [ -e {barrier}.a ] && exit 0; sleep 0.1; done",
                                  "exit 1"]})["Command"]

    assert finished(server, node, first["CommandId"])["Status"] == "Success"
    assert finished(server, node, second["CommandId"])["Status"] == "Success"


def test_cancel_a_running_step(server, node):
    ssm = server.client()
    command = ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[node.instance_id],
                               Parameters={"commands": ["sleep 120"]})["Command"]
    wait_for(lambda: ssm.get_command_invocation(CommandId=command["CommandId"],
             InstanceId=node.instance_id)["Status"] == "InProgress", what="a running step")

    ssm.cancel_command(CommandId=command["CommandId"])

    result = finished(server, node, command["CommandId"])
    assert result["Status"] == "Cancelled", result


def test_a_reboot_step_runs_again_after_the_boot(server, node, tmp_path):
    flag = tmp_path / "first-run-done"
    ssm = server.client()
    command = ssm.send_command(
        DocumentName="AWS-RunShellScript", InstanceIds=[node.instance_id],
        Parameters={"commands": [f"if [ -e {flag} ]; then echo after the boot; exit 0; fi",
                                 f"touch {flag}", "exit 194"]})["Command"]

    wait_for(lambda: node.reboot_count() == 1, what="the reboot command")
    assert ssm.get_command_invocation(CommandId=command["CommandId"],
                                      InstanceId=node.instance_id)["Status"] == "InProgress"
    node.kill()
    node.start()

    result = finished(server, node, command["CommandId"])
    assert result["Status"] == "Success", result
    assert result["StandardOutputContent"] == "after the boot\n"


def test_a_step_survives_an_agent_killed_with_sigkill(server, node, tmp_path):
    started, done = tmp_path / "step-started", tmp_path / "step-finished"
    ssm = server.client()
    command = ssm.send_command(
        DocumentName="AWS-RunShellScript", InstanceIds=[node.instance_id],
        Parameters={"commands": ["echo started", f"touch {started}", "sleep 3", f"touch {done}",
                                 "echo done", "exit 3"]})["Command"]
    wait_for(started.exists, what="the step to start")

    node.kill()
    wait_for(done.exists, what="the step to finish without its agent")
    node.start()

    result = finished(server, node, command["CommandId"])
    assert (result["Status"], result["ResponseCode"]) == ("Failed", 3), result
    assert result["StandardOutputContent"] == "started\ndone\n"
