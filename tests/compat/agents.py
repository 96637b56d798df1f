"""Real tagrun-agent processes registered with a real tagrun-server."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import ROOT


def agent_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "tagrun-agent"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo build -p tagrun-agent` first")
    return binary


RUNNING = ("Pending", "InProgress", "Delayed", "Cancelling")


def wait_for(predicate, timeout: float = 60, what: str = "condition", every: float = 0.1):
    """Polls `predicate` until it returns a truthy value, within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def command_done(ssm, command_id: str, timeout: float = 60) -> dict:
    """The command (ListCommands) once it has reached a final status."""
    def final():
        listed = ssm.list_commands(CommandId=command_id)["Commands"][0]
        return None if listed["Status"] in RUNNING else listed
    return wait_for(final, timeout, what=f"command {command_id} to finish", every=0.25)


def invocations(ssm, command_id: str, details: bool = False) -> dict:
    """The command's invocations by instance id (ListCommandInvocations)."""
    listed = ssm.list_command_invocations(CommandId=command_id, Details=details)
    return {i["InstanceId"]: i for i in listed["CommandInvocations"]}


def wait_online(ssm, instance_ids, timeout: float = 60):
    """Waits until every node reports `Online` with an agent version."""
    def online():
        listed = ssm.describe_instance_information(
            Filters=[{"Key": "InstanceIds", "Values": list(instance_ids)}])
        up = {i["InstanceId"] for i in listed["InstanceInformationList"]
              if i["PingStatus"] == "Online" and i.get("AgentVersion")}
        return up >= set(instance_ids)
    wait_for(online, timeout, what=f"{len(instance_ids)} nodes to be Online", every=0.25)


class AgentProcess:
    """One node: registered with an activation carrying `admin_tags`, reporting
    `own_tags` itself, running `tagrun-agent run` until stopped.

    `static` = (instance_id, key, secret) makes it an EC2-style node of the server's
    configuration instead (its tags come from that configuration); `endpoint` replaces
    the server's URL (a proxy in between); `state` puts the state directory elsewhere;
    `extra` adds top-level lines to agent.toml."""

    def __init__(self, server, directory: Path, admin_tags=None, own_tags=None, workers=5,
                 static=None, endpoint=None, state=None, extra=(), start=True):
        self.server = server
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.state = state or directory / "state"
        region = getattr(server, "region", "us-east-1")
        endpoint = endpoint or server.url
        if static:
            self.instance_id = static[0]
        else:
            self.instance_id = self._register(server, region, admin_tags)
        own = ", ".join(f'{k} = "{v}"' for k, v in (own_tags or {}).items())
        self.reboots = directory / "reboots"
        self.config = directory / "agent.toml"
        text = (
            f'endpoint = "{endpoint}"\n'
            f'region = "{region}"\n'
            f'state_dir = "{self.state}"\n'
            f"tags = {{ {own} }}\n"
            f"command_workers = {workers}\n"
            "kill_grace_secs = 1\n"
            f'reboot_command = ["/bin/sh", "-c", "echo rebooted >> {self.reboots}"]\n'
            + "".join(f"{line}\n" for line in extra)
        )
        if static:
            text += (f'[credentials]\ninstance_id = "{static[0]}"\n'
                     f'access_key_id = "{static[1]}"\nsecret_access_key = "{static[2]}"\n')
        self.config.write_text(text)
        self.process = None
        if start:
            self.start()

    def _register(self, server, region, admin_tags) -> str:
        tags = [{"Key": k, "Value": v} for k, v in (admin_tags or {}).items()]
        activation = server.client().create_activation(IamRole="SSMServiceRole", Tags=tags)
        subprocess.run(
            [str(agent_binary()), "register", "--endpoint", server.url, "--region", region,
             "--activation-id", activation["ActivationId"],
             "--activation-code", activation["ActivationCode"], "--state-dir", str(self.state)],
            check=True, capture_output=True,
        )
        registration = json.loads((self.state / "registration.json").read_text())
        return registration["instance_id"]

    def rss_kib(self) -> int:
        """The agent's resident set (VmRSS) in KiB, 0 once it has exited."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return 0
        line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "")
        return int(line.split()[1]) if line else 0

    def log(self) -> str:
        return (self.directory / "agent.log").read_text(errors="replace")

    def start(self):
        log = open(self.directory / "agent.log", "ab")
        self.process = subprocess.Popen(
            [str(agent_binary()), "run", "--config", str(self.config)],
            stdout=log, stderr=log,
        )

    def kill(self):
        """SIGKILL: the agent gets no chance to clean up; its steps keep running."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def reboot_count(self) -> int:
        return len(self.reboots.read_text().splitlines()) if self.reboots.exists() else 0
