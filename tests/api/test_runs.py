"""Flow triggers → a real Prefect run → GET /api/runs/{id} → WebSocket events.

In-process runs execute in the app's thread pool against the session's Prefect test server;
deployment runs are executed by a served deployment in another process (the worker's role).
"""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from proposalflow import audit

from .conftest import auth, make_settings, token_for

CSV = "Company,URL,E-mail\nAcme,acme.com,a@acme.com\nBeta,beta.io,b@beta.io\nBad,,not-an-email\n"


@pytest.fixture
def imports(api_settings) -> Path:
    folder = api_settings.home_dir / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clients.csv").write_text(CSV)
    return folder


@pytest.fixture
def in_process_api(db_url, prefect_api_url):
    from api.main import create_app

    with TestClient(create_app(make_settings(PROPOSALFLOW_FLOW_RUNNER="in-process"))) as client:
        yield client


def events_until_closed(api, run_id, token=None, first_message=None, limit=60.0):
    """Every message of the run's WebSocket, up to its close; returns (messages, close code)."""
    path = f"/api/runs/{run_id}/events" + (f"?token={token}" if token else "")
    messages = []
    deadline = time.monotonic() + limit
    with api.websocket_connect(path) as ws:
        if first_message is not None:
            ws.send_json(first_message)
        try:
            while time.monotonic() < deadline:
                messages.append(ws.receive_json())
        except WebSocketDisconnect as closed:
            return messages, closed.code
    raise AssertionError(f"no close within {limit} s: {messages}")


def test_trigger_runs_in_process_and_the_websocket_reports_completion(in_process_api, imports, db):
    api, editor = in_process_api, auth("editor")
    response = api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"},
                        headers={**editor, "X-Request-ID": "trigger-1"})
    assert response.status_code == 202, response.text
    accepted = response.json()
    run_id = accepted["id"]
    assert response.headers["location"] == f"/api/runs/{run_id}" and accepted["mode"] == "in-process"
    assert accepted["links"]["events"] == f"/api/runs/{run_id}/events"

    messages, code = events_until_closed(api, run_id, token=token_for("viewer"))
    assert code == 1000
    states = [m["run"]["state"] for m in messages]
    assert states[-1] == "completed" and len(states) == len(set(states))  # pushed on change only
    final = messages[-1]["run"]
    assert final["result"]["inserted"] == 2 and final["result"]["rejected"] == 1
    assert final["prefect_state"] == "Completed" and final["ended_at"] and final["parameters"]["source"].endswith("clients.csv")

    status = api.get(f"/api/runs/{run_id}", headers=auth("viewer")).json()
    assert status["state"] == "completed" and status["result"]["inserted"] == 2
    names = [c["name"] for c in api.get("/api/clients", headers=editor).json()["items"]]
    assert names == ["Acme", "Beta"]
    [entry] = audit.entries(db, resource="runs", resource_id=run_id)
    assert entry.action == "trigger" and entry.request_id == "trigger-1" and entry.details["flow"] == "ingest-clients"
    listed = api.get("/api/runs", params={"mine": "true"}, headers=editor).json()["items"]
    assert [r["id"] for r in listed] == [run_id]


def test_a_failing_run_reports_failed_with_the_reason(in_process_api, imports):
    (imports / "no-names.csv").write_text("colour,size\nred,1\n")
    api = in_process_api
    run_id = api.post("/api/flows/ingest-clients/runs", json={"source": "no-names.csv"}, headers=auth("editor")).json()["id"]
    messages, code = events_until_closed(api, None or run_id, first_message={"token": token_for("viewer")})
    final = messages[-1]["run"]
    assert code == 1000 and final["state"] == "failed" and "no name column" in final["error"]


def test_triggers_are_validated_before_anything_starts(in_process_api, imports, db):
    api, editor = in_process_api, auth("editor")
    for body, field in (({"source": "/etc/passwd"}, "source"), ({"source": "missing.csv"}, "source"),
                        ({"source": "http://127.0.0.1:9/x.csv"}, "source"),
                        ({"source": "clients.csv", "batch_rows": 5}, "batch_rows"),
                        ({"source": "clients.csv", "run_id": "x"}, "run_id")):
        response = api.post("/api/flows/ingest-clients/runs", json=body, headers=editor)
        assert response.status_code == 422, body
        assert field in [e["field"] for e in response.json()["errors"]]
    assert api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"},
                    headers=auth("viewer")).status_code == 403
    assert api.post("/api/flows/no-such-flow/runs", json={}, headers=editor).status_code == 404
    generate = api.post("/api/flows/generate-proposal/runs", json={"client_id": "7d8e1f7c-0000-4000-8000-000000000000"},
                        headers=editor)
    assert generate.status_code == 422 and generate.json()["errors"][0]["field"] == "client_id"
    # checks through the core: unknown clients, another client's proposal, a proposal not approved
    acme = api.post("/api/clients", json={"name": "Acme", "website": "acme.com"}, headers=editor).json()["id"]
    beta = api.post("/api/clients", json={"name": "Beta", "website": "beta.io"}, headers=editor).json()["id"]
    draft = api.post("/api/proposals", json={"client_id": acme}, headers=editor)
    assert draft.status_code == 201, draft.text
    unknown = "7d8e1f7c-0000-4000-8000-000000000001"
    for flow, body, field, words in (
            ("enrich-clients", {"client_ids": [acme, unknown]}, "client_ids", unknown),
            ("generate-proposal", {"client_id": beta, "proposal_id": draft.json()["id"]}, "proposal_id", "not a proposal of"),
            ("deliver-proposal", {"proposal_id": unknown}, "proposal_id", "does not exist"),
            ("deliver-proposal", {"proposal_id": draft.json()["id"]}, "proposal_id", "'draft'")):
        response = api.post(f"/api/flows/{flow}/runs", json=body, headers=editor)
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == field, response.text
        assert words in response.json()["detail"] and acme not in response.json()["errors"][0]["message"]
    assert db.execute("SELECT count(*) FROM api_flow_runs").fetchone()[0] == 0


def test_idempotency_key_returns_the_same_run(in_process_api, imports, db):
    api, headers = in_process_api, {**auth("editor"), "Idempotency-Key": "import-2026-11-27"}
    first = api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"}, headers=headers)
    second = api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"}, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"] and second.headers["idempotent-replayed"] == "true"
    assert db.execute("SELECT count(*) FROM api_flow_runs").fetchone()[0] == 1
    # the trigger is counted once (a replay starts nothing)
    assert 'proposalflow_flow_triggers_total{flow="ingest-clients",mode="in-process"} 1.0' in api.get("/metrics").text
    events_until_closed(api, first.json()["id"], token=token_for("viewer"))  # let it finish before teardown


def test_concurrent_requests_with_one_idempotency_key_start_one_run(in_process_api, imports, db, prefect_api_url):
    """Four clients retrying at once with the same key: one run, four 202s naming it."""
    api, headers = in_process_api, {**auth("editor"), "Idempotency-Key": "burst-1"}
    barrier = threading.Barrier(4)

    def post(_):
        barrier.wait()
        return api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"}, headers=headers)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, range(4)))
    assert [a.status_code for a in answers] == [202] * 4, [a.text for a in answers]
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 3
    assert db.execute("SELECT count(*) FROM api_flow_runs").fetchone()[0] == 1
    source = str(imports / "clients.csv")
    created = httpx.post(f"{prefect_api_url}/flow_runs/filter",
                         json={"sort": "EXPECTED_START_TIME_DESC", "limit": 200}).json()
    assert [r["id"] for r in created if r["parameters"].get("source") == source] == list(ids)  # one in Prefect too
    # another user's same key is theirs: a run of its own
    other = api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"},
                     headers={**auth("editor", "other@agency.test"), "Idempotency-Key": "burst-1"})
    assert other.status_code == 202 and other.json()["id"] not in ids
    for run_id in ids | {other.json()["id"]}:
        events_until_closed(api, run_id, token=token_for("viewer"))  # let them finish before teardown


def test_runs_are_shared_work_not_owned_objects(in_process_api, imports):
    """A decision (README, Authentication): every viewer sees every run, with who started it; `mine` narrows."""
    api = in_process_api
    started = api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"},
                       headers=auth("editor", "ann@agency.test")).json()
    ann = api.get("/api/users/me", headers=auth("editor", "ann@agency.test")).json()
    bob = auth("viewer", "bob@agency.test")
    assert api.get(f"/api/runs/{started['id']}", headers=bob).json()["requested_by"] == ann["id"]
    assert [r["id"] for r in api.get("/api/runs", headers=bob).json()["items"]] == [started["id"]]
    assert api.get("/api/runs", params={"mine": "true"}, headers=bob).json()["items"] == []
    mine = api.get("/api/runs", params={"mine": "true"}, headers=auth("editor", "ann@agency.test")).json()["items"]
    assert [r["id"] for r in mine] == [started["id"]]
    messages, code = events_until_closed(api, started["id"], token=token_for("viewer", "bob@agency.test"))
    assert code == 1000 and messages[-1]["run"]["state"] == "completed"


def test_websocket_refuses_bad_tokens_and_unknown_runs(in_process_api):
    api = in_process_api
    messages, code = events_until_closed(api, "00000000-0000-4000-8000-000000000000", token="not-a-jwt")
    assert code == 4401 and messages[0]["event"] == "error"
    assert messages[0]["problem"]["type"] == "https://proposalflow.dev/problems/authentication"
    messages, code = events_until_closed(api, "00000000-0000-4000-8000-000000000000", first_message={"hello": 1})
    assert code == 4401
    messages, code = events_until_closed(api, "00000000-0000-4000-8000-000000000000", token=token_for("viewer"))
    assert code == 4404 and "not started through this API" in messages[0]["problem"]["detail"]
    assert api.get("/api/runs/00000000-0000-4000-8000-000000000000", headers=auth("viewer")).status_code == 404


def test_trigger_rate_limit_answers_429_with_retry_after(db_url, prefect_api_url, imports):
    from api.main import create_app

    settings = make_settings(PROPOSALFLOW_FLOW_RUNNER="in-process", PROPOSALFLOW_RATE_LIMIT_TRIGGERS="2/minute")
    with TestClient(create_app(settings)) as api:
        editor = auth("editor")
        codes = [api.post("/api/flows/ingest-clients/runs", json={"source": "missing.csv"}, headers=editor)
                 for _ in range(3)]
        assert [r.status_code for r in codes] == [422, 422, 429]  # the limit counts attempts, valid or not
        refused = codes[-1]
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 30
        assert refused.json()["type"] == "https://proposalflow.dev/problems/rate-limited"
        # other routes are not affected, nor other users
        assert api.get("/api/clients", headers=editor).status_code == 200
        assert api.post("/api/flows/ingest-clients/runs", json={"source": "missing.csv"},
                        headers=auth("editor", "other@agency.test")).status_code == 422
        metrics = api.get("/metrics").text
        assert 'proposalflow_rate_limited_total{limit="trigger"} 1.0' in metrics


@pytest.mark.slow
def test_with_a_prefect_api_the_trigger_creates_a_deployment_run_a_worker_executes(db_url, prefect_api_url, imports,
                                                                                  tmp_path):
    """PREFECT_API_URL set: run_deployment → a served deployment (another process) runs it."""
    from api.main import create_app

    env = {**os.environ, "PREFECT_API_URL": prefect_api_url, "PREFECT_RUNNER_POLL_FREQUENCY": "1",
           "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true", "DATABASE_URL": db_url,
           "PROPOSALFLOW_HOME": str(imports.parent)}
    serve = ("from flows.ingest_clients import ingest_clients\n"
             "ingest_clients.serve(name='ingest-clients', print_starting_message=False)\n")
    worker = subprocess.Popen([sys.executable, "-c", serve], env=env, cwd=Path(__file__).resolve().parents[2],
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "w"))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the deployment exists once the runner registered it
            if httpx.post(f"{prefect_api_url}/deployments/filter", json={}).json():
                break
            time.sleep(0.5)
        with TestClient(create_app(make_settings(PREFECT_API_URL=prefect_api_url))) as api:
            response = api.post("/api/flows/ingest-clients/runs", json={"source": "clients.csv"}, headers=auth("editor"))
            assert response.status_code == 202, response.text
            assert response.json()["mode"] == "deployment"
            run_id = response.json()["id"]
            messages, code = events_until_closed(api, run_id, token=token_for("viewer"), limit=120)
            assert code == 1000, (tmp_path / "worker.log").read_text()[-3000:]
            states = [m["run"]["state"] for m in messages]
            assert states[-1] == "completed", (messages, (tmp_path / "worker.log").read_text()[-3000:])
            status = api.get(f"/api/runs/{run_id}", headers=auth("viewer")).json()
            assert status["result"]["inserted"] == 2 and status["mode"] == "deployment"
            run = httpx.get(f"{prefect_api_url}/flow_runs/{run_id}").json()
            assert run["deployment_id"] is not None and "api" in run["tags"]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
