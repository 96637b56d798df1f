"""A node that speaks the messages protocol the way AWS's agent does, for tests
that need to control exactly what a node answers and when."""

import datetime
import json
import uuid

from conftest import NODES, raw


def now_iso() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


class FakeNode:
    def __init__(self, server, instance_id: str):
        self.server = server
        self.instance_id = instance_id
        self.key, self.secret = NODES[instance_id]

    def call(self, operation: str, **fields):
        body = json.dumps(fields).encode()
        target = f"EC2WindowsMessageDeliveryService.{operation}"
        return raw(self.server, target, body, self.key, self.secret, service="ec2messages")

    def poll(self, visibility: int = 10, destination: str = None):
        status, _, body = self.call(
            "GetMessages",
            Destination=destination or self.instance_id,
            MessagesRequestId=str(uuid.uuid4()),
            VisibilityTimeoutInSeconds=visibility,
        )
        assert status == 200, body
        return body["Messages"]

    def poll_one(self, **kwargs):
        messages = self.poll(**kwargs)
        assert len(messages) == 1, messages
        return messages[0]

    def ack(self, message_id: str):
        return self.call("AcknowledgeMessage", MessageId=message_id)

    def reply(self, message_id: str, document_status: str, steps=None, trace: str = ""):
        payload = {
            "additionalInfo": {
                "agent": {"lang": "en-US", "name": "fake", "os": "linux", "osver": "1", "ver": "1.0"},
                "dateTime": now_iso(),
                "runId": "",
                "runtimeStatusCounts": None,
            },
            "documentStatus": document_status,
            "documentTraceOutput": trace,
            "runtimeStatus": steps,
        }
        return self.call("SendReply", MessageId=message_id, ReplyId=str(uuid.uuid4()),
                         Payload=json.dumps(payload))

    @staticmethod
    def step(status: str, code: int = 0, stdout: str = "", stderr: str = "",
             action: str = "aws:runShellScript"):
        output = stdout + (("\n----------ERROR-------\n" + stderr) if stderr else "")
        return {
            "status": status, "code": code, "name": action, "output": output[:2500],
            "startDateTime": now_iso(), "endDateTime": now_iso(),
            "outputS3BucketName": "", "outputS3KeyPrefix": "", "stepName": "",
            "standardOutput": stdout, "standardError": stderr,
        }

    def run(self, message: dict, status: str = "Success", code: int = 0, stdout: str = "",
            stderr: str = "", step: str = "aws:runShellScript"):
        """What the agent does with a command: receipt, ack, step result, final reply."""
        message_id = message["MessageId"]
        self.reply(message_id, "InProgress")
        self.ack(message_id)
        result = {step: self.step(status, code, stdout, stderr)}
        self.reply(message_id, "InProgress", result)
        return self.reply(message_id, status, result)
