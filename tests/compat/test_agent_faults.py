"""The real agent and the real server under faults: processes killed with SIGKILL, the
network cut, a full state filesystem, a step printing 1 GiB."""

import errno
import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time

import pytest

from agents import AgentProcess, command_done, invocations, wait_for
from conftest import NODES, Server

WEB = "i-0123456789abcdef0"
DB = "i-0fedcba9876543210"


def web_agent(server, directory, **kwargs) -> AgentProcess:
    """A real agent serving the configuration's EC2-style node WEB (no registration)."""
    key, secret = NODES[WEB]
    return AgentProcess(server, directory, static=(WEB, key, secret), **kwargs)


def send(ssm, commands, instance_id=WEB, **kwargs):
    return ssm.send_command(DocumentName="AWS-RunShellScript", InstanceIds=[instance_id],
                            Parameters={"commands": list(commands)}, **kwargs)["Command"]


def output(ssm, command_id, instance_id=WEB):
    return ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)


@pytest.fixture
def server(server_dir):
    running = Server(server_dir)
    yield running
    running.stop()


@pytest.fixture
def server_dir(tmp_path):
    directory = tmp_path / "server-dir"
    directory.mkdir()
    return directory


def two_step_document(count, started) -> str:
    steps = [
        ("first", [f"echo run >> {count}.first", f"touch {started}", "sleep 3", "echo out1"]),
        ("second", [f"echo run >> {count}.second", "echo out2", "exit 4"]),
    ]
    return json.dumps({
        "schemaVersion": "2.2",
        "description": "Two steps, each counting its runs.",
        "mainSteps": [{"action": "aws:runShellScript", "name": name,
                       "inputs": {"runCommand": commands}} for name, commands in steps],
    })


def lines(path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_agent_killed_mid_step_reports_real_results_and_runs_nothing_twice(server, tmp_path):
    agent = web_agent(server, tmp_path / "agent")
    try:
        ssm = server.client()
        count, started = tmp_path / "count", tmp_path / "started"
        ssm.create_document(Name="TwoSteps", DocumentType="Command",
                            Content=two_step_document(count, started))
        command = ssm.send_command(DocumentName="TwoSteps", InstanceIds=[WEB])["Command"]
        wait_for(started.exists, what="the first step to start")

        # Killed while the first step sleeps, started again while it still runs: the new
        # agent follows the running script, then runs the second step.
        agent.kill()
        agent.start()

        listed = command_done(ssm, command["CommandId"])
        plugins = {p["Name"]: p for p in invocations(ssm, command["CommandId"], True)[WEB][
            "CommandPlugins"]}
        second = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=WEB,
                                            PluginName="second")
        assert (listed["Status"], second["ResponseCode"]) == ("Failed", 4)
        assert (plugins["first"]["Status"], plugins["first"]["ResponseCode"]) == ("Success", 0)
        assert plugins["first"]["Output"] == "out1\n"
        assert (plugins["second"]["Status"], plugins["second"]["ResponseCode"]) == ("Failed", 4)
        assert plugins["second"]["Output"] == "out2\n"

        # Another SIGKILL and start after the end: the finished command is not run again.
        agent.kill()
        agent.start()
        later = send(ssm, ["echo later"])
        assert command_done(ssm, later["CommandId"])["Status"] == "Success"
        assert (lines(count.with_suffix(".first")), lines(count.with_suffix(".second"))) == (1, 1)
    finally:
        agent.stop()


def test_server_killed_mid_command_keeps_every_command_and_reply(server_dir, tmp_path):
    first = Server(server_dir)
    port = first.url.rsplit(":", 1)[1]
    agent = web_agent(first, tmp_path / "agent")
    second = None
    try:
        ssm = first.client()
        done = send(ssm, ["echo before the kill"])
        command_done(ssm, done["CommandId"])
        started, ended = tmp_path / "started", tmp_path / "ended"
        running = send(ssm, [f"touch {started}", "sleep 2", "echo across the kill",
                             f"touch {ended}"])
        waiting = send(ssm, ["echo for a node with no agent"], instance_id=DB)
        wait_for(started.exists, what="the step to start")

        first.kill()
        wait_for(ended.exists, what="the step to end while the server is down")
        second = Server(server_dir, listen=f"127.0.0.1:{port}")
        ssm = second.client()

        assert command_done(ssm, running["CommandId"])["Status"] == "Success"
        assert output(ssm, running["CommandId"])["StandardOutputContent"] == "across the kill\n"
        assert output(ssm, done["CommandId"])["StandardOutputContent"] == "before the kill\n"
        listed = {c["CommandId"]: c for c in ssm.list_commands()["Commands"]}
        assert set(listed) == {done["CommandId"], running["CommandId"], waiting["CommandId"]}
        assert listed[waiting["CommandId"]]["Status"] == "Pending"
        assert listed[waiting["CommandId"]]["Parameters"]["commands"] == [
            "echo for a node with no agent"]
    finally:
        agent.stop()
        (second or first).stop()


class Cable:
    """A TCP relay on loopback between the agent and the server that can be cut: a cut
    closes the listening port and every open connection."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.port = 0
        self.listener = None
        self.connections = []
        self.lock = threading.Lock()
        self.up = False
        self.connect()

    def connect(self):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self):
        self.up = False
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FaultyRelay:
    """An HTTP relay on loopback that refuses the first `times` calls of one operation
    with AWS's InternalServerError and passes everything else to the server unchanged
    (the Host header too, so signatures still verify)."""

    def __init__(self, server_url: str, operation: str, times: int = 1):
        target = server_url.removeprefix("http://").rstrip("/")
        relay = self
        self.refusals_left = times
        self.refused = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("X-Amz-Target", "").endswith("." + operation) and (
                        relay.refusals_left > 0):
                    relay.refusals_left -= 1
                    relay.refused += 1
                    self.answer(500, {"Content-Type": "application/x-amz-json-1.1"},
                                b'{"__type": "InternalServerError", "message": "injected"}')
                    return
                upstream = http.client.HTTPConnection(target, timeout=30)
                upstream.putrequest("POST", self.path, skip_host=True,
                                    skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in ("connection", "keep-alive"):
                        upstream.putheader(name, value)
                upstream.endheaders(body)
                response = upstream.getresponse()
                payload = response.read()
                headers = {k: v for k, v in response.getheaders()
                           if k.lower() not in ("connection", "transfer-encoding",
                                                "content-length")}
                upstream.close()
                self.answer(response.status, headers, payload)

            def answer(self, status, headers, payload):
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the agent went away mid-poll (it was stopped)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_refused_acknowledgement_does_not_strand_the_command(server, tmp_path):
    relay = FaultyRelay(server.url, "AcknowledgeMessage")
    agent = web_agent(server, tmp_path / "agent", endpoint=relay.url)
    try:
        ssm = server.client()
        count = tmp_path / "count"

        # Refused once, the message is handed out again after its 10 s visibility timeout.
        command = send(ssm, [f"echo run >> {count}", "echo ran"])

        assert command_done(ssm, command["CommandId"], timeout=25)["Status"] == "Success"
        assert relay.refused == 1
        assert lines(count) == 1
    finally:
        agent.stop()
        relay.close()


def ping_status(ssm, instance_id=WEB) -> str:
    listed = ssm.describe_instance_information(
        Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])["InstanceInformationList"]
    return listed[0]["PingStatus"] if listed else "Unknown"


def test_network_cut_for_sixty_seconds_then_results_arrive(tmp_path):
    (tmp_path / "server-dir").mkdir()
    server = Server(tmp_path / "server-dir", extra=["connection_lost_after_secs = 20"])
    cable = Cable(int(server.url.rsplit(":", 1)[1]))
    agent = web_agent(server, tmp_path / "agent", endpoint=f"http://127.0.0.1:{cable.port}",
                      extra=["health_interval_secs = 5"])
    try:
        ssm = server.client()
        wait_for(lambda: ping_status(ssm) == "Online", what="the node Online")
        started = tmp_path / "started"
        running = send(ssm, [f"touch {started}", "sleep 3", "echo during the cut"])
        wait_for(started.exists, what="the step to start")

        cable.cut()
        cut_until = time.monotonic() + 60
        queued = send(ssm, ["echo sent during the cut"])
        wait_for(lambda: ping_status(ssm) == "ConnectionLost", timeout=50,
                 what="the node to be seen as ConnectionLost")
        # For the rest of the minute nothing crosses: the finished step's reply waits.
        while time.monotonic() < cut_until:
            assert ping_status(ssm) == "ConnectionLost"
            assert output(ssm, running["CommandId"])["Status"] == "InProgress"
            assert output(ssm, queued["CommandId"])["Status"] in ("Pending", "InProgress")
            time.sleep(1)
        cable.connect()
        healed = time.monotonic()

        wait_for(lambda: ping_status(ssm) == "Online", timeout=60, what="Online after the cut")
        online_after = time.monotonic() - healed
        assert command_done(ssm, running["CommandId"])["Status"] == "Success"
        assert command_done(ssm, queued["CommandId"])["Status"] == "Success"
        results_after = time.monotonic() - healed
        assert results_after < 60, f"results arrived {results_after:.1f} s after the cut healed"
        assert output(ssm, running["CommandId"])["StandardOutputContent"] == "during the cut\n"
        assert output(ssm, queued["CommandId"])["StandardOutputContent"] == "sent during the cut\n"
        print(f"Online again {online_after:.1f} s and results {results_after:.1f} s "
              "after the network returned")
    finally:
        agent.stop()
        cable.cut()
        server.stop()


@pytest.fixture
def tiny_state(tmp_path):
    """A 2 MiB tmpfs for the agent's state directory."""
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs",
                              str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(path) -> int:
    """Writes `path` until the filesystem has no byte left; returns the bytes written."""
    written = 0
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    written += os.write(descriptor, b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
    finally:
        os.close(descriptor)
    return written


def state_files_are_whole(state) -> bool:
    for path in state.rglob("*.json"):
        json.loads(path.read_text())
    return True


def test_full_state_filesystem_gives_a_clear_error_and_recovers(server, tmp_path, tiny_state):
    state = tiny_state / "state"
    agent = web_agent(server, tmp_path / "agent", state=state)
    filler = tiny_state / "filler"
    try:
        ssm = server.client()
        first = send(ssm, ["echo with room"])
        assert command_done(ssm, first["CommandId"])["Status"] == "Success"

        fill(filler)
        blocked = send(ssm, ["echo after the space returns"])

        wait_for(lambda: "No space left on device" in agent.log(), timeout=30,
                 what="the agent to report the full disk")
        assert agent.process.poll() is None, "the agent exited on a full disk"
        assert output(ssm, blocked["CommandId"])["Status"] in ("InProgress", "Pending")
        filler.unlink()

        assert command_done(ssm, blocked["CommandId"])["Status"] == "Success"
        assert output(ssm, blocked["CommandId"])["StandardOutputContent"] == (
            "after the space returns\n")
        agent.kill()
        assert state_files_are_whole(state)
        agent.start()
        after = send(ssm, ["echo restarted"])
        assert command_done(ssm, after["CommandId"])["Status"] == "Success"
    finally:
        agent.stop()
        if filler.exists():
            filler.unlink()


def test_a_step_printing_one_gib_keeps_the_agent_memory_bounded(server, tmp_path):
    agent = web_agent(server, tmp_path / "agent")
    try:
        ssm = server.client()
        wait_for(lambda: agent.rss_kib() > 0, what="the agent to run")
        idle = agent.rss_kib()
        command = send(ssm, ["yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 1073741824",
                             "echo >&2 printed"])
        samples = []

        def finished():
            samples.append(agent.rss_kib())
            status = ssm.list_commands(CommandId=command["CommandId"])["Commands"][0]["Status"]
            return status not in ("Pending", "InProgress")

        wait_for(finished, timeout=120, what="the 1 GiB step to finish", every=0.05)
        result = output(ssm, command["CommandId"])
        peak = max(samples)
        print(f"agent VmRSS idle {idle} KiB, peak {peak} KiB over {len(samples)} samples")
        assert result["Status"] == "Success", result
        assert result["StandardErrorContent"] == "printed\n"
        assert len(result["StandardOutputContent"]) == 24_000
        assert result["StandardOutputContent"].startswith("0123456789abcdefghijklmnopqrstuvwxyz\n")
        assert peak < 64 * 1024, f"agent VmRSS reached {peak} KiB"
    finally:
        agent.stop()
        for path in (tmp_path / "agent" / "state" / "output").rglob("stdout"):
            os.unlink(path)
