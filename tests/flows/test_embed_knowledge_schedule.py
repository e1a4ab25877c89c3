"""The hourly embed-knowledge schedule on a deployment where no knowledge folder is configured:
the run completes, saying why it did nothing — while sources given empty are still an error."""

import time

import httpx
import pytest

from flows.embed_knowledge import embed_knowledge
from proposalflow.errors import ValidationFailed
from proposalflow.settings import get_settings


@pytest.fixture
def no_knowledge_dir(monkeypatch):
    monkeypatch.delenv("PROPOSALFLOW_KNOWLEDGE_DIR", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def flow_run_logs(api_url: str, flow_run_id, timeout: float = 30) -> list[str]:
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)  # what this process logged is sent before we look
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{api_url}/logs/filter", json={"logs": {"flow_run_id": {"any_": [str(flow_run_id)]}}},
                              timeout=30)
        response.raise_for_status()
        messages = [entry["message"] for entry in response.json()]
        if any("skipped" in m for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(0.5)


def test_a_run_with_no_sources_and_no_knowledge_dir_completes_and_says_why(db, prefect_api_url, no_knowledge_dir):
    state = embed_knowledge(prune=True, return_state=True)  # the parameters of the hourly schedule
    assert state.is_completed(), state
    result = state.result()
    assert result["skipped"] == "nothing to embed: no sources given and PROPOSALFLOW_KNOWLEDGE_DIR is not set"
    assert (result["documents"], result["embedded"], result["pruned"]) == (0, 0, 0)
    logs = flow_run_logs(prefect_api_url, state.state_details.flow_run_id)
    assert any("skipped: nothing to embed" in m and "PROPOSALFLOW_KNOWLEDGE_DIR" in m for m in logs), logs
    assert db.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 0


@pytest.mark.parametrize("given", [{"urls": []}, {"files": []}, {"folder": ""}])
def test_sources_given_empty_are_still_an_error(db, prefect_api_url, no_knowledge_dir, given):
    state = embed_knowledge(**given, return_state=True)
    assert state.is_failed()
    with pytest.raises(ValidationFailed, match="nothing to embed: the sources given are empty"):
        state.result()
