"""The deliver-proposal flow: the local exporters through real Prefect task runs, the event, exactly once."""

import time
from pathlib import Path

import pytest

from flows.deliver_proposal import deliver_proposal
from proposalflow.errors import IllegalTransition
from tests.delivery_support import make_proposal
from tests.flows.prefect_events import related_ids, wait_for_events

EVENT = "proposalflow.proposal.delivered"


@pytest.fixture
def local(monkeypatch):
    monkeypatch.setenv("PROPOSALFLOW_DELIVERY", "local")
    from proposalflow.settings import get_settings

    get_settings.cache_clear()


def test_the_flow_delivers_once_and_announces_it(db, prefect_api_url, local):
    pid = make_proposal(db)
    state = deliver_proposal(pid, return_state=True)
    report = state.result()
    assert report["status"] == "sent" and report["mail_state"] == "draft" and report["already_delivered"] is False
    assert all(Path(f).is_file() for f in report["files"]) and len(report["files"]) == 3

    events = wait_for_events(prefect_api_url, EVENT, resource_id=f"proposalflow.proposal.{pid}")
    assert len(events) == 1
    assert events[0]["payload"]["target"] == "local" and events[0]["payload"]["version"] == 1
    assert events[0]["resource"]["prefect.resource.name"] == "Route optimisation for Northwind"
    assert f"prefect.flow-run.{state.state_details.flow_run_id}" in related_ids(events[0])
    flow_run = db.execute("SELECT flow_run_id FROM deliveries").fetchone()[0]
    assert flow_run == str(state.state_details.flow_run_id)

    again = deliver_proposal(pid)
    assert again["already_delivered"] is True and again["files"] == report["files"]
    time.sleep(1)
    assert len(wait_for_events(prefect_api_url, EVENT, resource_id=f"proposalflow.proposal.{pid}")) == 1


def test_the_flow_refuses_a_proposal_that_is_not_approved(db, prefect_api_url, local):
    pid = make_proposal(db, state="in_review")
    state = deliver_proposal(pid, return_state=True)
    assert state.is_failed()
    with pytest.raises(IllegalTransition, match="only approved proposals are delivered"):
        state.result()


def test_the_batch_flow_goes_on_past_a_proposal_it_refuses(db, prefect_api_url, local):
    from flows.deliver_proposal import deliver_proposals
    from tests.delivery_support import make_client

    refused = make_proposal(db, state="in_review")
    approved = make_proposal(db, make_client(db, "Harborview Realty", email="carlos@harborview.example"))
    summary = deliver_proposals([refused, approved])
    assert (summary["delivered"], summary["already_delivered"], summary["failed"]) == (1, 0, 1)
    assert summary["failures"][0]["proposal_id"] == refused and "IllegalTransition" in summary["failures"][0]["error"]
    assert summary["deliveries"][0]["proposal_id"] == approved


# ── target="google" end to end: the flow's tasks against a local server speaking Google's protocol ──────

FLOW_RUN = """
import json, sys
from flows.deliver_proposal import deliver_proposal

state = deliver_proposal(sys.argv[1], target="google", return_state=True)
try:
    print(json.dumps({"ok": True, "report": state.result()}))
except Exception as exc:
    print(json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"}))
"""


@pytest.fixture
def google_env(tmp_path, db_url, prefect_api_url):
    """A service-account key whose token_uri is the local server's, and the environment that points
    delivery (in a subprocess: httplib2 reads HTTPLIB2_CA_CERTS when it is imported) at the server."""
    import json
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.fakes.google_workspace import GoogleWorkspaceServer

    with GoogleWorkspaceServer(tmp_path) as server:
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        key_file = tmp_path / "service-account.json"
        key_file.write_text(json.dumps({
            "type": "service_account", "project_id": "pf-test", "private_key_id": "k1", "private_key": pem,
            "client_email": "delivery@pf-test.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": server.token_uri}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "JINA", "GOOGLE", "PROPOSALFLOW"))}
        env.update(DATABASE_URL=db_url, PROPOSALFLOW_HOME=str(tmp_path / "home"), PREFECT_API_URL=prefect_api_url,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
                   PROPOSALFLOW_GOOGLE_SUBJECT="sales@agency.example", PROPOSALFLOW_GOOGLE_API_ENDPOINT=server.url,
                   HTTPLIB2_CA_CERTS=str(server.ca_file), PROPOSALFLOW_GOOGLE_ATTEMPTS="2")
        yield server, env


def run_flow_in_subprocess(proposal_id: str, env: dict) -> dict:
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", FLOW_RUN, proposal_id], env=env, cwd=root, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_the_flow_delivers_to_google_through_its_wire_protocol(db, google_env):
    server, env = google_env
    pid = make_proposal(db)
    outcome = run_flow_in_subprocess(pid, env)
    assert outcome["ok"], outcome
    report = outcome["report"]
    [doc], [folder] = server.docs(), server.folders()
    assert report["target"] == "google" and report["mail_state"] == "draft" and report["made"] == \
        ["folder", "document", "message"]
    assert report["doc_link"] == doc["webViewLink"] and doc["parents"] == [folder["id"]]
    assert doc["appProperties"]["proposalflow_key"] == f"proposal:{pid}:v1:google:document"
    assert "<h2" in doc["media"]  # the HTML that Drive converts
    [draft] = server.drafts.values()
    assert report["message"]["draft_id"] == draft["id"]
    assert draft["message_id"] == f"<proposal.{pid}.v1.google.message@proposalflow>"
    assert server.token_requests[0]["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    row = db.execute("SELECT p.status, p.doc_link, c.drive_folder_id FROM proposals p JOIN clients c "
                     "ON c.id = p.client_id").fetchone()
    assert row == ("sent", doc["webViewLink"], folder["id"])

    again = run_flow_in_subprocess(pid, env)
    assert again["report"]["already_delivered"] is True and len(server.docs()) == 1 and len(server.drafts) == 1


@pytest.mark.slow
def test_503s_until_the_cores_attempts_run_out_then_the_task_retry_makes_no_second_doc(db, google_env):
    """PROPOSALFLOW_GOOGLE_ATTEMPTS=2: the first upload is answered 503 (nothing made), the second is made
    but answered 503 too — the core gives up (IntegrationFailed). Prefect retries the create-document task
    (10 s later), which finds that Doc by its key instead of uploading a second one."""
    server, env = google_env
    server.fail("POST", "/upload/drive/v3/files", 503)
    server.fail("POST", "/upload/drive/v3/files", 503, made=True)
    pid = make_proposal(db)
    outcome = run_flow_in_subprocess(pid, env)
    assert outcome["ok"], outcome
    assert len(server.docs()) == 1 and outcome["report"]["document"]["id"] == server.docs()[0]["id"]
    uploads_and_lookups = [r for r in server.requests if r[1].startswith(("/upload", "/drive/v3/files"))
                           and not r[1].endswith("permissions")]
    assert uploads_and_lookups == [
        ("GET", "/drive/v3/files"), ("POST", "/drive/v3/files"),       # the client's folder: looked up, made
        ("POST", "/upload/drive/v3/files"),                             # 503, not made
        ("GET", "/drive/v3/files"), ("POST", "/upload/drive/v3/files"), # not there; made, answered 503
        ("GET", "/drive/v3/files"),                                     # the task's retry: found by its key
    ]
    step = db.execute("SELECT state, attempts FROM delivery_steps WHERE step = 'document'").fetchone()
    assert step == ("done", 1)
    assert db.execute("SELECT status FROM proposals").fetchone()[0] == "sent"
    assert len(server.drafts) == 1
