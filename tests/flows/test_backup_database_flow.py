"""The backup-database flow as Prefect runs it: a verified dump, retention, and its event."""

from pathlib import Path

import psycopg

from flows.backup_database import backup_database
from tests.flows.prefect_events import related_ids, wait_for_events


def test_flow_backs_up_verifies_prunes_and_announces(db_url, prefect_api_url, tmp_path, monkeypatch):
    monkeypatch.setenv("PROPOSALFLOW_BACKUP_KEEP", "2")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO clients (name, natural_key) VALUES ('Acme', 'name:acme'), ('Beta', 'name:beta')")
    folder = tmp_path / "backups"
    results = [backup_database(folder=str(folder)) for _ in range(2)]
    state = backup_database(folder=str(folder), return_state=True)
    third = state.result()

    assert third["tables"]["clients"] == 2 and third["verified_entries"] > 10
    assert third["removed"] == [results[0]["path"]]  # PROPOSALFLOW_BACKUP_KEEP=2
    assert sorted(p.name for p in folder.glob("*.dump")) == [Path(results[1]["path"]).name, Path(third["path"]).name]

    name = Path(third["path"]).name
    events = wait_for_events(prefect_api_url, "proposalflow.database.backed_up", resource_id=f"proposalflow.backup.{name}")
    assert len(events) == 1
    assert events[0]["payload"]["tables"]["clients"] == 2 and events[0]["payload"]["sha256"] == third["sha256"]
    assert f"prefect.flow-run.{state.state_details.flow_run_id}" in related_ids(events[0])


def test_a_bad_folder_fails_the_run_naming_it(db_url, prefect_api_url, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    state = backup_database(folder=str(blocker), return_state=True)
    assert state.is_failed()
    assert "not-a-folder" in str(state.result(raise_on_failure=False))
