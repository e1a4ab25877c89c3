"""The shipped automation: proposalflow.proposal.generated → a notification, on a real Prefect server."""

import http.server
import json
import os
import queue
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.events import emit_event
from prefect.events.schemas.automations import AutomationCore

REPO = Path(__file__).resolve().parents[2]
AUTOMATION = REPO / "deployments" / "automations" / "proposal-generated-notify.yaml"


@pytest.fixture
def webhook():
    """A local webhook receiver: what Prefect's notification sends lands in the queue."""
    received: queue.Queue = queue.Queue()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.put(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def test_the_automation_file_is_a_valid_automation():
    automation = AutomationCore.model_validate(yaml.safe_load(AUTOMATION.read_text()))
    assert automation.trigger.expect == {"proposalflow.proposal.generated"}
    assert automation.actions[0].type == "send-notification"


def test_a_generated_proposal_event_sends_the_notification(prefect_api_url, webhook, tmp_path):
    url, received = webhook
    block_name = f"sales-{uuid.uuid4().hex[:8]}"
    block_id = CustomWebhookNotificationBlock(name="sales", url=url, method="POST",
                                              json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(block_name)
    definition = tmp_path / "automation.yaml"
    definition.write_text(AUTOMATION.read_text().replace("00000000-0000-0000-0000-000000000000", str(block_id)))
    env = {**os.environ, "PREFECT_API_URL": prefect_api_url}
    created = subprocess.run([str(Path(sys.executable).parent / "prefect"), "automation", "create", "-f", str(definition)],
                             env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr

    try:
        notified(received)
    finally:  # the session's server outlives this test: leave no automation behind
        for automation in httpx.post(f"{prefect_api_url}/automations/filter", json={}).json():
            if automation["name"] == "proposal-generated-notify":
                httpx.delete(f"{prefect_api_url}/automations/{automation['id']}")


def notified(received: queue.Queue) -> None:
    proposal_id = uuid.uuid4()
    emit_event("proposalflow.proposal.generated",
               resource={"prefect.resource.id": f"proposalflow.proposal.{proposal_id}",
                         "prefect.resource.name": "Data platform for Acme"},
               payload={"version": 2, "model": "gpt-4o", "offline": False, "sections": 5, "citations": 12,
                        "warnings": 0})
    message = received.get(timeout=90)
    assert message["subject"] == "Proposal written: Data platform for Acme"
    assert "(version 2)" in message["body"] and "citations: 12" in message["body"]
    assert "Written by: gpt-4o" in message["body"] and f"Proposal id: {proposal_id}" in message["body"]
