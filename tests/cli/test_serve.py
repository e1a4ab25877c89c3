"""prefect.yaml and `proposalflow serve`: the deployments, their parameters and schedules, served in one process."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from proposalflow.cli.serve import read_deployments, schedule_of
from proposalflow.errors import ConfigurationError
from tests.support import PROPOSALFLOW

REPO = Path(__file__).resolve().parents[2]
FLOWS = {"ingest-clients", "enrich-clients", "embed-knowledge", "generate-proposal", "deliver-proposal",
         "nightly", "backup-database"}


def test_prefect_yaml_has_every_flow_with_valid_parameters_and_schedules():
    from prefect.flows import load_flow_from_entrypoint

    specs = {s.name: s for s in read_deployments(REPO / "prefect.yaml")}
    assert set(specs) == FLOWS
    for spec in specs.values():
        flow = load_flow_from_entrypoint(str(REPO / spec.entrypoint), use_placeholder_flow=False)
        assert flow.name == spec.name  # deployment name = the flow's name
        assert spec.description and "proposalflow" in spec.tags
        unknown = set(spec.parameters) - set(flow.parameters.properties)
        assert not unknown, f"{spec.name}: {unknown}"
        for schedule in spec.schedules:
            assert schedule["timezone"] and schedule_of(schedule).cron  # cron with a time zone, and it parses
    assert {n for n, s in specs.items() if s.schedules} == {"enrich-clients", "embed-knowledge", "nightly",
                                                             "backup-database"}


def test_prefect_deploy_has_nothing_to_ask():
    """`prefect deploy --all` in a terminal asks about remote storage when there is no `pull` and
    about schedules when a deployment has no `schedules` key (both default to yes); the file
    answers both, and every schedule is cron in a named time zone."""
    from zoneinfo import ZoneInfo

    import yaml

    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    steps = {name: inputs for step in document["pull"] for name, inputs in step.items()}
    # workers run this checkout: the folder `prefect deploy` ran in, recorded by the build step
    checkout = {inputs["id"]: inputs for step in document["build"] for name, inputs in step.items()
                if name == "prefect.deployments.steps.run_shell_script"}
    assert checkout["checkout"]["script"] == "pwd"
    assert steps == {"prefect.deployments.steps.set_working_directory": {"directory": "{{ checkout.stdout }}"}}
    deployments = {d["name"]: d for d in document["deployments"]}
    assert set(deployments) == FLOWS
    for name, deployment in deployments.items():
        assert isinstance(deployment.get("schedules"), list), f"{name}: no `schedules` (prefect deploy would ask)"
        assert "pull" not in deployment, name  # the top-level pull applies to all
        for schedule in deployment["schedules"]:
            assert schedule.get("cron") and schedule.get("timezone"), f"{name}: {schedule}"
            ZoneInfo(schedule["timezone"])  # a real IANA zone (DST handled), not UTC by omission
    # not only nightly's: the daily, hourly and backup schedules are in the agency's zone too
    assert {n for n, d in deployments.items() if d["schedules"]} - {"nightly"} == {
        "enrich-clients", "embed-knowledge", "backup-database"}
    assert {n for n, d in deployments.items() if not d["schedules"]} == {"ingest-clients", "generate-proposal",
                                                                        "deliver-proposal"}


def test_unknown_deployments_are_named(tmp_path):
    with pytest.raises(ConfigurationError, match="no deployment named nope"):
        read_deployments(REPO / "prefect.yaml", ["nope"])


@pytest.mark.slow
def test_serve_registers_the_schedules_and_runs_a_triggered_deployment(cli_env, db_url, prefect_api_url, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text("name,website\nAcme,acme.com\nBeta,beta.io\n")
    log = open(tmp_path / "serve.log", "wb")
    process = subprocess.Popen([PROPOSALFLOW, "serve", "--only", "ingest-clients", "--only", "backup-database"],
                               env=cli_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        served = {}
        while time.monotonic() < deadline and len(served) < 2:
            served = {d["name"]: d for d in httpx.post(f"{prefect_api_url}/deployments/filter", json={
                "deployments": {"name": {"any_": ["ingest-clients", "backup-database"]}}}).json()
                if d["work_pool_name"] is None}
            time.sleep(1)
        assert set(served) == {"ingest-clients", "backup-database"}, (tmp_path / "serve.log").read_text()[-3000:]
        schedule = served["backup-database"]["schedules"][0]
        assert schedule["schedule"]["cron"] == "30 2 * * *" and schedule["schedule"]["timezone"] == "Europe/Berlin"
        assert served["ingest-clients"]["parameters"] == {"batch_rows": 20000}

        run = httpx.post(f"{prefect_api_url}/deployments/{served['ingest-clients']['id']}/create_flow_run",
                         json={"parameters": {"source": str(path)}}).json()
        state = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and state not in ("COMPLETED", "FAILED", "CRASHED"):
            time.sleep(1)
            state = httpx.get(f"{prefect_api_url}/flow_runs/{run['id']}").json()["state_type"]
        assert state == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 2
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
