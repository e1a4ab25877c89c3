"""Ingestion announces itself: proposalflow.clients.ingested about the ingestion run."""

from flows.ingest_clients import ingest_clients
from tests.flows.prefect_events import related_ids, wait_for_events


def test_ingestion_emits_an_event_about_its_run(db, prefect_api_url, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text("name,website\nAcme,acme.com\nBeta,beta.io\n")
    state = ingest_clients(str(path), return_state=True)
    summary = state.result()
    events = wait_for_events(prefect_api_url, "proposalflow.clients.ingested",
                             resource_id=f"proposalflow.ingestion-run.{summary['run_id']}")
    assert len(events) == 1
    assert events[0]["resource"]["prefect.resource.name"] == str(path)
    assert events[0]["payload"]["inserted"] == 2
    assert f"prefect.flow-run.{state.state_details.flow_run_id}" in related_ids(events[0])
