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
