"""Real tagrun-agent processes registered with a real tagrun-server."""

import json
import os
import signal
import subprocess
from pathlib import Path

from conftest import ROOT


def agent_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "tagrun-agent"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo build -p tagrun-agent` first")
    return binary


class AgentProcess:
    """One node: registered with an activation carrying `admin_tags`, reporting
    `own_tags` itself, running `tagrun-agent run` until stopped."""

    def __init__(self, server, directory: Path, admin_tags=None, own_tags=None, workers=5):
        self.server = server
        self.directory = directory
        self.state = directory / "state"
        tags = [{"Key": k, "Value": v} for k, v in (admin_tags or {}).items()]
        activation = server.client().create_activation(IamRole="SSMServiceRole", Tags=tags)
        subprocess.run(
            [str(agent_binary()), "register", "--endpoint", server.url, "--region", "us-east-1",
             "--activation-id", activation["ActivationId"],
             "--activation-code", activation["ActivationCode"], "--state-dir", str(self.state)],
            check=True, capture_output=True,
        )
        registration = json.loads((self.state / "registration.json").read_text())
        self.instance_id = registration["instance_id"]
        own = ", ".join(f'{k} = "{v}"' for k, v in (own_tags or {}).items())
        self.reboots = directory / "reboots"
        self.config = directory / "agent.toml"
        self.config.write_text(
            f'endpoint = "{server.url}"\n'
            'region = "us-east-1"\n'
            f'state_dir = "{self.state}"\n'
            f"tags = {{ {own} }}\n"
            f"command_workers = {workers}\n"
            "kill_grace_secs = 1\n"
            f'reboot_command = ["/bin/sh", "-c", "echo rebooted >> {self.reboots}"]\n'
        )
        self.process = None
        self.start()

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
