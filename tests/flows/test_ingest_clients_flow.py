"""The ingest-clients flow as Prefect runs it, from a file and from a URL over real HTTP."""

import http.server
import threading
from functools import partial

import pytest

from flows.ingest_clients import ingest_clients

CSV = "name,website,email\nAcme,acme.com,a@acme.com\nBeta,beta.io,b@beta.io\nNo Site,,x@\n"


@pytest.fixture
def file_server(tmp_path):
    (tmp_path / "clients.csv").write_text(CSV)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_flow_ingests_and_a_rerun_changes_nothing(db, prefect_api_url, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text(CSV)
    state = ingest_clients(str(path), return_state=True)
    assert state.is_completed()
    first = state.result()
    assert {k: first[k] for k in ("read", "inserted", "updated", "unchanged", "rejected")} == \
        {"read": 3, "inserted": 2, "updated": 0, "unchanged": 0, "rejected": 1}
    second = ingest_clients(str(path))
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 2)
    run = db.execute("SELECT flow_run_id, status FROM ingestion_runs WHERE id = %s", (first["run_id"],)).fetchone()
    assert run == (str(state.state_details.flow_run_id), "completed")


def test_flow_reads_a_url(db, prefect_api_url, file_server):
    summary = ingest_clients(f"{file_server}/clients.csv")
    assert summary["inserted"] == 2 and summary["source"].endswith("/clients.csv")
    assert db.execute("SELECT source FROM clients LIMIT 1").fetchone()[0] == f"{file_server}/clients.csv"


def test_an_unreadable_file_fails_the_run_without_retrying(db, prefect_api_url, tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    state = ingest_clients(str(path), return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="empty.csv: the file is empty"):
        state.result()
    assert db.execute("SELECT count(*) FROM ingestion_runs").fetchone()[0] == 0
