"""generate-proposal and generate-proposals as Prefect runs them (offline composer, real knowledge chunks)."""

import psycopg
import pytest

from flows.generate_proposal import generate_proposal, generate_proposals
from proposalflow.proposals import service
from proposalflow.settings import get_settings
from tests.flows.prefect_events import related_ids, wait_for_events
from tests.proposals_support import client_id, knowledge_database


@pytest.fixture
def kb(pg_admin_url, template_url, tmp_path, monkeypatch):
    url = knowledge_database(pg_admin_url)
    for key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROPOSALFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROPOSALFLOW_LLM", "offline")
    monkeypatch.setenv("PROPOSALFLOW_EMBEDDINGS", "local")
    get_settings.cache_clear()
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn
    get_settings.cache_clear()


def test_flow_writes_a_proposal_stores_its_run_id_and_announces_it(kb, prefect_api_url):
    cid = client_id(kb, "Northwind Logistics")
    state = generate_proposal(cid, brief="More B2B leads", return_state=True)
    assert state.is_completed()
    result = state.result()
    flow_run_id = str(state.state_details.flow_run_id)
    assert result["offline"] and result["version"] == 1 and result["citations"] > 5
    row = kb.execute("SELECT flow_run_id, status, version FROM proposals WHERE id = %s",
                     (result["proposal_id"],)).fetchone()
    assert row == (flow_run_id, "draft", 1)
    assert service.get(kb, result["proposal_id"]).content.metadata.flow_run_id == flow_run_id
    events = wait_for_events(prefect_api_url, "proposalflow.proposal.generated",
                             resource_id=f"proposalflow.proposal.{result['proposal_id']}")
    assert len(events) == 1 and events[0]["payload"]["offline"] is True
    assert f"prefect.flow-run.{flow_run_id}" in related_ids(events[0])
    assert f"proposalflow.client.{cid}" in related_ids(events[0])


def test_batch_covers_every_client_a_rerun_writes_nothing_and_a_bad_client_does_not_sink_it(kb, prefect_api_url):
    first = generate_proposals(concurrency=1)
    assert (first["generated"], first["reused"], first["failed"]) == (3, 0, 0)
    # the bound holds: with concurrency 1, no run started before the previous one finished
    runs = kb.execute("SELECT started_at, finished_at FROM proposal_runs ORDER BY started_at").fetchall()
    assert len(runs) == 3 and all(finished is not None for _, finished in runs)
    assert all(runs[i][1] <= runs[i + 1][0] for i in range(len(runs) - 1)), runs
    again = generate_proposals(concurrency=2)
    assert (again["generated"], again["reused"]) == (0, 3)
    assert kb.execute("SELECT count(*) FROM proposals").fetchone()[0] == 3
    mixed = generate_proposals(client_ids=[client_id(kb, "Brightleaf Dental Group"),
                                           "00000000-0000-0000-0000-000000000000"], new=True)
    assert (mixed["generated"], mixed["failed"]) == (1, 1)
    assert "client 00000000-0000-0000-0000-000000000000 does not exist" in mixed["failures"][0]["error"]
