"""A fleet of real agents with different tags, driven by users holding AWS's seed policies.

Ten real `tagrun-agent` processes (eight EC2-style nodes with static keys, two hybrid
nodes registered through activations) serve one real `tagrun-server` in `us-east-2`, a
region where the seed policies' `arn:aws:ssm:us-east-2::document/AWS-*` statement lets
their users run AWS's own documents. Every node carries `Fleet=ten`, so one `Targets`
entry reaches the ten of them.
"""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError, WaiterError

from agents import AgentProcess, command_done, invocations, wait_for, wait_online
from conftest import ACCOUNT, Server

REGION = "us-east-2"
FLEET = [{"Key": "tag:Fleet", "Values": ["ten"]}]
BOTH = {"tag_key1": "tag_value1", "tag_key2": "tag_value2"}

# EC2-style nodes of the server's configuration, which gives them their tags.
EC2 = {
    "web": {"Finance": "WebServers"},
    "db": {"Finance": "Databases"},
    "bare": {},
    "both": BOTH,
    "key1": {"tag_key1": "tag_value1"},
    "key2": {"tag_key2": "tag_value2"},
    "wrong": {"tag_key1": "tag_value2", "tag_key2": "tag_value1"},
    "plain": {},
}
# Hybrid nodes, registered through activations carrying these tags. Few of them, since
# each registration generates an RSA key.
HYBRID = {
    "hybridweb": {"Finance": "WebServers"},
    "hybridboth": BOTH,
}
# An EC2-style node outside the ten, for the delivery timeout.
OFFLINE = "i-0f1ee7000000000b9"


def static_node(index: int, name: str):
    """(instance id, access key, secret) of the index-th EC2-style node."""
    return f"i-0f1ee7000000000{index:02d}", f"AKIAEXAMPLEFLEET{index:04d}", f"{name}-secret"


class Fleet:
    """The server and its ten agents, by name."""

    def __init__(self, server, agents):
        self.server = server
        self.agents = agents
        self.ids = {name: agent.instance_id for name, agent in agents.items()}
        self.names = {agent.instance_id: name for name, agent in agents.items()}

    def arn(self, name: str) -> str:
        instance_id = self.ids[name]
        if instance_id.startswith("mi-"):
            return f"arn:aws:ssm:{REGION}:{ACCOUNT}:managed-instance/{instance_id}"
        return f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance_id}"

    def by_name(self, ssm, command_id: str, details: bool = False) -> dict:
        found = invocations(ssm, command_id, details)
        return {self.names[i]: invocation for i, invocation in found.items()}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    statics = {name: static_node(i, name) for i, name in enumerate(EC2)}
    nodes = {iid: (key, secret, {**EC2[name], "Fleet": "ten"})
             for name, (iid, key, secret) in statics.items()}
    nodes[OFFLINE] = ("AKIAEXAMPLEFLEETOFF1", "offline-secret", {"Fleet": "offline"})
    server = Server(tmp_path_factory.mktemp("fleet-server"), region=REGION, nodes=nodes)
    agents = {}

    def hybrid(name):
        tags = {**HYBRID[name], "Fleet": "ten"}
        return name, AgentProcess(server, tmp_path_factory.mktemp(name), admin_tags=tags,
                                  workers=2)
    try:
        for name, identity in statics.items():
            agents[name] = AgentProcess(server, tmp_path_factory.mktemp(name), static=identity,
                                        workers=2)
        with ThreadPoolExecutor(len(HYBRID)) as pool:
            agents.update(pool.map(hybrid, HYBRID))
        wait_online(server.client(), [a.instance_id for a in agents.values()])
        yield Fleet(server, agents)
    finally:
        for agent in agents.values():
            agent.stop()
        server.stop()


def send(ssm, commands, **kwargs):
    return ssm.send_command(DocumentName="AWS-RunShellScript",
                            Parameters={"commands": list(commands)}, **kwargs)["Command"]


def denied(fleet, user: str, name: str) -> str:
    return (f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: "
            f"ssm:SendCommand on resource: {fleet.arn(name)} "
            "because no identity-based policy allows the ssm:SendCommand action")


def assert_only_allowed(fleet, ssm, command_id: str, allowed: set, stdout: str):
    """Success with `stdout` on the allowed nodes, Failed/AccessDenied on the others, and
    the command a success: AccessDenied invocations are not errors."""
    listed = command_done(ssm, command_id)
    found = fleet.by_name(ssm, command_id, details=True)

    assert set(found) == set(fleet.ids)
    for name, invocation in found.items():
        if name in allowed:
            assert invocation["Status"] == "Success", (name, invocation)
            assert invocation["CommandPlugins"][0]["Output"] == stdout
        else:
            assert (invocation["Status"], invocation["StatusDetails"]) == (
                "Failed", "AccessDenied"), (name, invocation)
    assert (listed["Status"], listed["ErrorCount"]) == ("Success", 0), listed
    assert listed["TargetCount"] == 10 and listed["CompletedCount"] == 10


def test_finance_policy_runs_only_on_ec2_instances_tagged_finance_webservers(fleet):
    finance = fleet.server.client("finance")

    command = send(finance, ["echo finance"], Targets=FLEET)
    assert_only_allowed(fleet, finance, command["CommandId"], {"web"}, "finance\n")

    direct = send(finance, ["echo direct"], InstanceIds=[fleet.ids["web"]])
    assert command_done(finance, direct["CommandId"])["Status"] == "Success"
    # A wrong tag, no Finance tag, and a hybrid node: the policy names EC2 instances only.
    for name in ("db", "plain", "hybridweb"):
        with pytest.raises(ClientError) as error:
            send(finance, ["echo no"], InstanceIds=[fleet.ids["web"], fleet.ids[name]])
        assert error.value.response["Error"]["Code"] == "AccessDeniedException"
        assert error.value.response["Error"]["Message"] == denied(fleet, "finance", name)


def test_two_tags_policy_needs_both_tags(fleet):
    user = fleet.server.client("twotags")

    command = send(user, ["echo both"], Targets=FLEET)
    assert_only_allowed(fleet, user, command["CommandId"], {"both", "hybridboth"}, "both\n")

    direct = send(user, ["echo direct"], InstanceIds=[fleet.ids["both"]])
    assert command_done(user, direct["CommandId"])["Status"] == "Success"
    for name in ("key1", "key2", "wrong", "web"):
        with pytest.raises(ClientError) as error:
            send(user, ["echo no"], InstanceIds=[fleet.ids[name]])
        assert error.value.response["Error"]["Message"] == denied(fleet, "twotags", name)


def test_either_tag_policy_accepts_each_tag_group(fleet):
    user = fleet.server.client("eithertag")

    command = send(user, ["echo either"], Targets=FLEET)
    assert_only_allowed(fleet, user, command["CommandId"], {"both", "hybridboth", "key1", "key2"},
                        "either\n")

    direct = send(user, ["echo direct"], InstanceIds=[fleet.ids["key1"], fleet.ids["key2"]])
    assert command_done(user, direct["CommandId"])["Status"] == "Success"
    for name in ("wrong", "plain", "hybridweb"):
        with pytest.raises(ClientError) as error:
            send(user, ["echo no"], InstanceIds=[fleet.ids[name]])
        assert error.value.response["Error"]["Message"] == denied(fleet, "eithertag", name)


def test_seed_policies_grant_exactly_their_read_actions(fleet):
    command = send(fleet.server.client(), ["true"], InstanceIds=[fleet.ids["plain"]])
    command_id, node = command["CommandId"], fleet.ids["plain"]
    command_done(fleet.server.client(), command_id)

    def code(user, call, **kwargs):
        try:
            getattr(fleet.server.client(user), call)(**kwargs)
            return "ok"
        except ClientError as error:
            return error.response["Error"]["Code"]

    for user in ("twotags", "eithertag"):
        assert code(user, "list_commands", CommandId=command_id) == "ok"
        assert code(user, "list_command_invocations", CommandId=command_id) == "ok"
        assert code(user, "get_document", Name="AWS-RunShellScript") == "ok"
        assert code(user, "get_command_invocation", CommandId=command_id,
                    InstanceId=node) == "AccessDeniedException"
        assert code(user, "describe_instance_information") == "AccessDeniedException"
        assert code(user, "cancel_command", CommandId=command_id) == "AccessDeniedException"
    assert code("finance", "get_command_invocation", CommandId=command_id, InstanceId=node) == "ok"
    assert code("finance", "describe_instance_information") == "ok"
    assert code("finance", "cancel_command", CommandId=command_id) == "AccessDeniedException"
    assert code("nobody", "list_commands") == "AccessDeniedException"


def test_seed_policies_deny_aws_documents_outside_their_two_regions(server):
    # The shared server runs in us-east-1; the seeds allow AWS-* documents in us-west-1
    # and us-east-2 only, so even a node carrying both tags cannot be reached.
    node = "i-0123456789abcdef0"
    server.client().add_tags_to_resource(ResourceType="ManagedInstance", ResourceId=node,
                                         Tags=[{"Key": k, "Value": v} for k, v in BOTH.items()])

    for user in ("twotags", "eithertag"):
        with pytest.raises(ClientError) as error:
            send(server.client(user), ["true"], InstanceIds=[node])
        assert error.value.response["Error"]["Message"] == (
            f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: "
            "ssm:SendCommand on resource: arn:aws:ssm:us-east-1::document/AWS-RunShellScript "
            "because no identity-based policy allows the ssm:SendCommand action")


def intervals(directory) -> list:
    """(start, end) of every run recorded by `record()` steps, one file per node."""
    runs = []
    for path in directory.iterdir():
        times = dict(line.split() for line in path.read_text().splitlines())
        runs.append((float(times["start"]), float(times["end"])))
    return runs


def record(directory, *middle):
    log = f"{directory}/$AWS_SSM_INSTANCE_ID"
    return [f"echo start $(date +%s.%N) >> {log}", *middle, f"echo end $(date +%s.%N) >> {log}"]


def peak(runs) -> int:
    events = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    running = highest = 0
    for _, change in events:
        running += change
        highest = max(highest, running)
    return highest


def test_max_concurrency_bounds_the_nodes_running_at_once(fleet, tmp_path):
    ssm = fleet.server.client()

    command = send(ssm, record(tmp_path, "sleep 2"), Targets=FLEET, MaxConcurrency="3")

    listed = command_done(ssm, command["CommandId"], timeout=90)
    runs = intervals(tmp_path)
    assert (listed["Status"], listed["CompletedCount"]) == ("Success", 10)
    assert len(runs) == 10
    assert peak(runs) == 3, sorted(runs)


def test_max_errors_stops_sending_and_terminates_the_rest(fleet, tmp_path):
    ssm = fleet.server.client()

    # Two at a time, two errors allowed: the third error stops the sending; the fourth
    # node, already released, still runs.
    command = send(ssm, record(tmp_path, "sleep 0.5", "exit 1"), Targets=FLEET,
                   MaxConcurrency="2", MaxErrors="2")

    listed = command_done(ssm, command["CommandId"])
    found = fleet.by_name(ssm, command["CommandId"])
    statuses = sorted((i["Status"], i["StatusDetails"]) for i in found.values())
    assert len(list(tmp_path.iterdir())) == 4
    assert statuses == [("Cancelled", "Terminated")] * 6 + [("Failed", "Failed")] * 4
    assert (listed["Status"], listed["ErrorCount"], listed["CompletedCount"]) == (
        "Failed", 4, 10), listed


def test_cancel_stops_running_nodes_and_never_starts_the_others(fleet, tmp_path):
    ssm = fleet.server.client()
    command = send(ssm, record(tmp_path, "sleep 60"), Targets=FLEET, MaxConcurrency="2")
    wait_for(lambda: len(list(tmp_path.iterdir())) == 2, what="two nodes to start")

    ssm.cancel_command(CommandId=command["CommandId"])

    listed = command_done(ssm, command["CommandId"])
    found = fleet.by_name(ssm, command["CommandId"])
    assert listed["Status"] == "Cancelled", listed
    assert {i["Status"] for i in found.values()} == {"Cancelled"}
    assert len(list(tmp_path.iterdir())) == 2
    assert all("end" not in p.read_text() for p in tmp_path.iterdir())


def test_execution_timeout_on_several_nodes(fleet, tmp_path):
    ssm = fleet.server.client()
    nodes = [fleet.ids["plain"], fleet.ids["bare"]]

    # 5 s is the shortest timeout the agent honours, as AWS's agent does.
    command = ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=nodes,
                               Parameters={"commands": record(tmp_path, "sleep 60"),
                                           "executionTimeout": ["5"]})["Command"]

    listed = command_done(ssm, command["CommandId"])
    found = invocations(ssm, command["CommandId"])
    # An execution timeout is an error: the command fails (a delivery timeout does not).
    assert (listed["Status"], listed["ErrorCount"]) == ("Failed", 2), listed
    assert {(i["Status"], i["StatusDetails"]) for i in found.values()} == {
        ("TimedOut", "ExecutionTimedOut")}
    assert len(list(tmp_path.iterdir())) == 2


def test_delivery_times_out_for_an_offline_node(fleet, tmp_path):
    ssm = fleet.server.client()
    offline = AgentProcess(fleet.server, tmp_path / "agent",
                           static=(OFFLINE, "AKIAEXAMPLEFLEETOFF1", "offline-secret"))
    try:
        wait_online(ssm, [offline.instance_id])
        offline.stop()
        marker = tmp_path / "ran"

        # 30 s is the smallest TimeoutSeconds SendCommand takes.
        command = send(ssm, [f"touch {marker}"], InstanceIds=[offline.instance_id],
                       TimeoutSeconds=30)

        listed = command_done(ssm, command["CommandId"], timeout=60)
        result = ssm.get_command_invocation(CommandId=command["CommandId"],
                                            InstanceId=offline.instance_id)
        assert (result["Status"], result["StatusDetails"]) == ("TimedOut", "DeliveryTimedOut")
        assert listed["Status"] == "TimedOut"
        # Back online, the node runs new commands and never the expired one.
        offline.start()
        later = send(ssm, ["echo back"], InstanceIds=[offline.instance_id])
        assert command_done(ssm, later["CommandId"])["Status"] == "Success"
        assert not marker.exists()
    finally:
        offline.stop()


def test_reboot_step_with_the_reboot_command_replaced(fleet, tmp_path):
    ssm = fleet.server.client()
    names = ["plain", "bare"]
    flag = f"{tmp_path}/booted-$AWS_SSM_INSTANCE_ID"
    command = send(ssm, [f"if [ -e {flag} ]; then echo after the boot; exit 0; fi",
                         f"touch {flag}", "exit 194"],
                   InstanceIds=[fleet.ids[n] for n in names])
    agents = [fleet.agents[n] for n in names]
    before = [agent.reboot_count() for agent in agents]

    wait_for(lambda: all(a.reboot_count() == b + 1 for a, b in zip(agents, before)),
             what="the replaced reboot command on both nodes")
    assert {i["Status"] for i in invocations(ssm, command["CommandId"]).values()} == {
        "InProgress"}
    for agent in agents:
        agent.kill()
        agent.start()

    listed = command_done(ssm, command["CommandId"])
    assert listed["Status"] == "Success", listed
    for agent in agents:
        result = ssm.get_command_invocation(CommandId=command["CommandId"],
                                            InstanceId=agent.instance_id)
        assert result["StandardOutputContent"] == "after the boot\n"
    assert [agent.reboot_count() for agent in agents] == [b + 1 for b in before]


def test_output_past_the_truncation_limits(fleet):
    ssm = fleet.server.client()
    node = fleet.ids["bare"]
    stdout = "".join(f"{i}\n" for i in range(1, 10001))
    stderr = "".join(f"{i}\n" for i in range(1, 3001))
    assert len(stdout) > 24_000 and len(stderr) > 8_000

    command = send(ssm, ["seq 1 10000", "seq 1 3000 >&2"], InstanceIds=[node])

    command_done(ssm, command["CommandId"])
    result = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=node)
    plugin = invocations(ssm, command["CommandId"], details=True)[node]["CommandPlugins"][0]
    assert result["Status"] == "Success"
    # The agent marks its cut within the 24,000 characters, as AWS's agent does; the
    # server's 8,000-character cut of standard error has no mark.
    marker = "--output truncated--"
    assert result["StandardOutputContent"] == stdout[:24_000 - len(marker)] + marker
    assert result["StandardErrorContent"] == stderr[:8_000]
    assert len(plugin["Output"]) == 2_500
    # Output shares its 2,500 characters between both streams, each cut with a mark.
    assert plugin["Output"].startswith(stdout[:1_000])
    assert "----------ERROR-------\n1\n2\n3\n" in plugin["Output"]
    assert plugin["Output"].endswith("---Error truncated----")


def test_command_executed_waiter(fleet):
    finance = fleet.server.client("finance")
    node = fleet.ids["web"]
    waiter = finance.get_waiter("command_executed")

    good = send(finance, ["sleep 2", "echo waited"], InstanceIds=[node])
    waiter.wait(CommandId=good["CommandId"], InstanceId=node,
                WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    bad = send(finance, ["exit 3"], InstanceIds=[node])
    with pytest.raises(WaiterError) as failed:
        waiter.wait(CommandId=bad["CommandId"], InstanceId=node,
                    WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    result = finance.get_command_invocation(CommandId=good["CommandId"], InstanceId=node)
    assert result["StandardOutputContent"] == "waited\n"
    assert re.search(r"terminal failure state", str(failed.value)), failed.value
    assert failed.value.last_response["Status"] == "Failed"


def test_tag_conditioned_statement_allows_a_document_carrying_the_tag(server):
    node = "i-0fedcba9876543210"
    admin = server.client()
    tag = [{"Key": "tag_key1", "Value": "tag_value1"}]
    admin.add_tags_to_resource(ResourceType="ManagedInstance", ResourceId=node, Tags=tag)
    admin.create_document(Name="TaggedForTagKey1", DocumentType="Command", Tags=tag,
                          Content=(
                              '{"schemaVersion": "2.2", "description": "Tagged.", "mainSteps": '
                              '[{"action": "aws:runShellScript", "name": "run", '
                              '"inputs": {"runCommand": ["true"]}}]}'))

    command = server.client("eithertag").send_command(DocumentName="TaggedForTagKey1",
                                                      InstanceIds=[node])["Command"]

    assert command["TargetCount"] == 1
