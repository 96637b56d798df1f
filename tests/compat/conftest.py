"""Fixtures that start a real tagrun-server and hand out clients for it.

Every test talks to the server the way a user does: boto3 clients and the `aws`
CLI pointed at it with an endpoint URL, signed with keys from its configuration.
"""

import json
import os
import urllib.error
import urllib.request
import shutil
import subprocess
import textwrap
from pathlib import Path

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.credentials
import pytest

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
ACCOUNT = "123456789012"

SEEDS = ROOT / "crates" / "policy" / "tests" / "fixtures" / "seeds"

USERS = {
    "admin": ("AKIAEXAMPLEADMIN0001", "admin-secret", ["AmazonSSMFullAccess"]),
    "finance": ("AKIAEXAMPLEFINANCE01", "finance-secret", []),
    "reader": ("AKIAEXAMPLEREADER001", "reader-secret", ["AmazonSSMReadOnlyAccess"]),
    "nobody": ("AKIAEXAMPLENOBODY001", "nobody-secret", []),
    "twotags": ("AKIAEXAMPLETWOTAGS01", "twotags-secret", []),
    "eithertag": ("AKIAEXAMPLEEITHER001", "eithertag-secret", []),
}
# Policy files beside the managed policies: AWS's three tag-based seed examples.
USER_POLICIES = {
    # SendCommand on Finance=WebServers EC2 instances only, plus read access.
    "finance": [SEEDS / "allow-send-command-finance-webservers.json",
                ROOT / "server" / "src" / "auth" / "managed" / "AmazonSSMReadOnlyAccess.json"],
    # SendCommand on nodes carrying both tag_key1=tag_value1 and tag_key2=tag_value2.
    "twotags": [SEEDS / "allow-send-command-two-tags.json"],
    # SendCommand on nodes carrying either of those two tags.
    "eithertag": [SEEDS / "allow-send-command-either-tag-group.json"],
}
NODES = {
    "i-0123456789abcdef0": ("AKIAEXAMPLENODE00001", "node-secret-1"),
    "i-0fedcba9876543210": ("AKIAEXAMPLENODE00002", "node-secret-2"),
}


def server_binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    binary = target / "debug" / "tagrun-server"
    if not binary.exists():
        raise RuntimeError(f"{binary} is missing: run `cargo build -p tagrun-server` first")
    return binary


def write_config(directory: Path, region: str = REGION, nodes=None, extra=()) -> Path:
    """`nodes` adds EC2-style nodes {instance_id: (key, secret, tags)}; `extra` adds
    top-level lines such as `connection_lost_after_secs = 20`."""
    lines = [
        *extra,
        f'region = "{region}"',
        f'account_id = "{ACCOUNT}"',
        f'data_dir = "{directory / "data"}"',
        "long_poll_secs = 1",
    ]
    for name, (key, secret, managed) in USERS.items():
        lines += [
            "[[users]]",
            f'name = "{name}"',
            f'access_key_id = "{key}"',
            f'secret_access_key = "{secret}"',
            f"managed_policies = {json.dumps(managed)}",
        ]
        if name in USER_POLICIES:
            lines.append(f"policy_files = {json.dumps([str(p) for p in USER_POLICIES[name]])}")
    lines += ["[[roles]]", 'name = "SSMServiceRole"', 'managed_policies = ["AmazonSSMManagedInstanceCore"]']
    for instance_id, (key, secret) in NODES.items():
        lines += [
            "[[nodes]]",
            f'instance_id = "{instance_id}"',
            f'access_key_id = "{key}"',
            f'secret_access_key = "{secret}"',
            'role = "SSMServiceRole"',
            'tags = { Env = "prod" }',
        ]
    for instance_id, (key, secret, tags) in (nodes or {}).items():
        lines += [
            "[[nodes]]",
            f'instance_id = "{instance_id}"',
            f'access_key_id = "{key}"',
            f'secret_access_key = "{secret}"',
            'role = "SSMServiceRole"',
            "tags = { " + ", ".join(f'{k} = "{v}"' for k, v in tags.items()) + " }",
        ]
    path = directory / "server.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Server:
    """A running tagrun-server process on a free loopback port."""

    def __init__(self, directory: Path, listen: str = "127.0.0.1:0", region: str = REGION,
                 nodes=None, extra=()):
        self.directory = directory
        self.region = region
        self.config = write_config(directory, region, nodes, extra)
        self.process = subprocess.Popen(
            [str(server_binary()), "serve", "--config", str(self.config), "--listen", listen],
            stdout=subprocess.PIPE,
            stderr=open(directory / "server.log", "ab"),
            text=True,
        )
        first = self.process.stdout.readline().strip()
        if not first.startswith("listening on "):
            self.process.kill()
            log = (directory / "server.log").read_text()
            raise RuntimeError(f"server did not start: {first!r}\n{log}")
        self.url = first.removeprefix("listening on ")

    def client(self, user: str = "admin", service: str = "ssm"):
        key, secret, _ = USERS[user]
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )

    def node_client(self, instance_id: str, service: str = "ssm"):
        key, secret = NODES[instance_id]
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
        )

    def aws(self, *args: str, user: str = "admin", check: bool = True) -> subprocess.CompletedProcess:
        """Runs the aws CLI against this server, output as JSON."""
        key, secret, _ = USERS[user]
        env = dict(
            os.environ,
            AWS_ACCESS_KEY_ID=key,
            AWS_SECRET_ACCESS_KEY=secret,
            AWS_DEFAULT_REGION=self.region,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        aws = shutil.which("aws")
        command = [aws, "--endpoint-url", self.url, "--output", "json", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, check=check)

    def kill(self):
        """SIGKILL: no chance to flush or clean up."""
        self.process.kill()
        self.process.wait()

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("server"))
    yield running
    running.stop()


def command_document(commands: str = "echo hello") -> str:
    return json.dumps(
        {
            "schemaVersion": "2.2",
            "description": "Says hello.",
            "parameters": {"greeting": {"type": "String", "default": "hello"}},
            "mainSteps": [
                {
                    "action": "aws:runShellScript",
                    "name": "hello",
                    "inputs": {"runCommand": [commands]},
                }
            ],
        }
    )


YAML_DOCUMENT = textwrap.dedent(
    """\
    schemaVersion: '2.2'
    description: From YAML.
    mainSteps:
      - action: aws:runShellScript
        name: run
        inputs:
          runCommand:
            - uname -a
    """
)


def raw(server, target: str, body: bytes, key=None, secret=None, headers=None, service="ssm"):
    """Posts `body` to the server, signed with botocore when a key is given."""
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=server.url + "/",
        data=body,
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target,
                 **(headers or {})},
    )
    if key:
        credentials = botocore.credentials.Credentials(key, secret)
        botocore.auth.SigV4Auth(credentials, service, REGION).add_auth(request)
    return post(request)


def post(request: botocore.awsrequest.AWSRequest):
    """Sends a prepared request; returns status, headers and the JSON body."""
    prepared = request.prepare()
    http = urllib.request.Request(prepared.url, data=prepared.body,
                                  headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(http, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())
