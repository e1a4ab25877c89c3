"""Scale-out, end to end: a real `prefect server`, the work pool, `prefect deploy --all` from
prefect.yaml, TWO `prefect worker` processes, runs of every deployment started by the Prefect CLI
and by the product's API, and the data in the database. Nothing here is in-process: every part is
its own program, as on a set of servers sharing one Prefect server and one PostgreSQL.

The pipeline, offline: ingest (CLI and API) + backup → nightly + enrich + generate-proposal (API)
→ approve (API) → deliver-proposal (local outbox) + embed-knowledge (nothing changed).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from proposalflow.security import mint_token

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
JWT_SECRET = "e2e-jwt-secret-that-is-long-enough-0123456789"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Programs started in their own process groups (a worker's flow-run children included),
    each logging to a file; stopped in reverse order with two signals, then SIGKILL."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "wb")
        process = subprocess.Popen(args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.started.append((name, process))
        return process

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for _, process in reversed(self.started):
            self._signal(process, signal.SIGTERM)
        for _, process in reversed(self.started):
            if not self._wait(process, 5):
                self._signal(process, signal.SIGTERM)  # workers ignore the first one for a long time
        for _, process in reversed(self.started):
            if not self._wait(process, 10):
                self._signal(process, signal.SIGKILL)
                self._wait(process, 10)

    @staticmethod
    def _signal(process: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(process.pid, sig)  # the group we created: the program and its children
        except ProcessLookupError:
            pass

    @staticmethod
    def _wait(process: subprocess.Popen, seconds: float) -> bool:
        try:
            process.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False


def wait_until(what: str, check, timeout: float, processes: Processes | None = None, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(every)
    logs = "" if processes is None else "\n".join(
        f"--- {name} ---\n{processes.log(name)[-3000:]}" for name, _ in processes.started)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")


def prefect(args: list[str], env: dict, timeout: float = 180) -> str:
    result = subprocess.run([str(BIN / "prefect"), *args], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"prefect {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_two_workers_run_every_deployment_started_by_the_prefect_cli_and_the_api(db_url, tmp_path):
    api_port, prefect_port = free_port(), free_port()
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    home = tmp_path / "pf-home"
    (home / "imports").mkdir(parents=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PROPOSALFLOW_", "OPENAI", "JINA"))}
    base.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=prefect_api,
                PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true",
                DATABASE_URL=db_url, PROPOSALFLOW_HOME=str(home), PROPOSALFLOW_BACKUP_DIR=str(tmp_path / "backups"))
    server_env = {**base, "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}  # only the runs we start
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "services.md").write_text("# Data platforms\n\nWe build data platforms on PostgreSQL and "
                                           "dashboards for mid-size retailers, in twelve weeks.\n")
    product = {"PROPOSALFLOW_LLM": "offline", "PROPOSALFLOW_KNOWLEDGE_DIR": str(knowledge),
               "PROPOSALFLOW_DELIVERY": "local"}  # offline: no keys, no network
    worker_env = {**base, **product, "PREFECT_WORKER_QUERY_SECONDS": "2"}
    api_env = {**base, **product, "PROPOSALFLOW_JWT_SECRET": JWT_SECRET, "PROPOSALFLOW_FLOW_RUNNER": "deployment"}
    # no websites: enrichment finds nothing due, so nothing reaches for the (absent) internet
    (tmp_path / "cli.csv").write_text("name,email\nAcme,sales@acme.test\nBeta,info@beta.test\n")
    (home / "imports" / "api.csv").write_text("name,email\nGamma,hi@gamma.test\nDelta,hi@delta.test\n"
                                              "Epsilon,hi@eps.test\n")

    processes = Processes(tmp_path)
    try:
        processes.start("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                   "--port", str(prefect_port)], server_env)
        processes.start("api", [str(BIN / "proposalflow"), "api", "--port", str(api_port)], api_env)
        wait_until("the Prefect server", lambda: httpx.get(f"{prefect_api}/health", timeout=5).status_code == 200,
                   150, processes)

        prefect(["work-pool", "create", "proposalflow", "--type", "process"], base)
        for name in ("w1", "w2"):
            processes.start(name, [str(BIN / "prefect"), "worker", "start", "--pool", "proposalflow",
                                   "--name", name, "--limit", "1"], worker_env)
        prefect(["deploy", "--all"], base)

        deployments = {d["name"]: d for d in httpx.post(f"{prefect_api}/deployments/filter", json={}).json()}
        assert {"ingest-clients", "enrich-clients", "embed-knowledge", "generate-proposal", "deliver-proposal",
                "nightly", "backup-database"} <= set(deployments)
        assert all(d["work_pool_name"] == "proposalflow" for d in deployments.values())
        nightly = deployments["nightly"]["schedules"][0]
        assert nightly["active"] and nightly["schedule"]["cron"] == "0 1 * * *" and nightly["schedule"]["timezone"]
        assert "nightly/nightly" in prefect(["deployment", "ls"], base)

        wait_until("both workers online", lambda: {w["name"] for w in httpx.post(
            f"{prefect_api}/work_pools/proposalflow/workers/filter", json={}).json() if w["status"] == "ONLINE"}
            >= {"w1", "w2"}, 120, processes)

        api = f"http://127.0.0.1:{api_port}"
        token = mint_token(JWT_SECRET, email="ops@agency.test", role="editor")
        headers = {"Authorization": f"Bearer {token}"}

        def run_deployment(name: str, *parameters: str) -> str:  # (a) the Prefect CLI
            args = ["deployment", "run", f"{name}/{name}"]
            for parameter in parameters:
                args += ["-p", parameter]
            return re.search(r"UUID: ([0-9a-f-]{36})", prefect(args, base)).group(1)

        def trigger(flow: str, body: dict) -> str:  # (b) the product's API trigger route
            answer = httpx.post(f"{api}/api/flows/{flow}/runs", json=body, headers=headers, timeout=60)
            assert answer.status_code == 202, answer.text
            assert answer.json()["mode"] == "deployment"
            return str(answer.json()["id"])

        states: dict[str, dict] = {}

        def finish(*run_ids: str) -> None:
            def final():
                now = {r: httpx.get(f"{prefect_api}/flow_runs/{r}", timeout=10).json() for r in run_ids}
                return now if all(s["state_type"] in FINAL for s in now.values()) else None

            done = wait_until(f"{len(run_ids)} run(s) to finish", final, 200, processes, every=2)
            assert {r: s["state_type"] for r, s in done.items()} == dict.fromkeys(done, "COMPLETED"), \
                {s["name"]: s["state"]["message"] for s in done.values()}
            states.update(done)

        # 1. clients, twice over, and a backup
        cli_run = run_deployment("ingest-clients", f"source={tmp_path / 'cli.csv'}")
        backup_run = run_deployment("backup-database")
        wait_until("the API", lambda: httpx.get(f"{api}/healthz", timeout=5).status_code == 200, 120, processes)
        api_run = trigger("ingest-clients", {"source": "api.csv"})
        finish(cli_run, backup_run, api_run)

        # the data landed
        with psycopg.connect(db_url) as conn:
            names = [r[0] for r in conn.execute("SELECT name FROM clients ORDER BY name")]
            runs = conn.execute("SELECT flow_run_id FROM ingestion_runs WHERE status = 'completed'").fetchall()
        assert names == ["Acme", "Beta", "Delta", "Epsilon", "Gamma"]
        assert {r[0] for r in runs} == {cli_run, api_run}
        dumps = list((tmp_path / "backups").glob("proposalflow-*.dump"))
        assert len(dumps) == 1 and json.loads(dumps[0].with_suffix(".json").read_text())["tables"]["clients"] >= 0
        status = httpx.get(f"{api}/api/runs/{api_run}", headers=headers, timeout=30).json()
        assert status["state"] == "completed"

        # 2. the night's upkeep (enrich: nobody due; knowledge: one document), enrichment on its own,
        #    and a proposal for Acme started through the API
        with psycopg.connect(db_url) as conn:
            acme = str(conn.execute("SELECT id FROM clients WHERE name = 'Acme'").fetchone()[0])
        finish(run_deployment("nightly"), run_deployment("enrich-clients"),
               trigger("generate-proposal", {"client_id": acme, "brief": "A data platform"}))
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 1
            proposal, status_now = conn.execute("SELECT id::text, status FROM proposals WHERE client_id = %s",
                                                (acme,)).fetchone()
        assert status_now == "draft"

        # 3. review and approval through the API, then delivery (local: a .docx and an .eml) and knowledge again
        for step in ("in_review", "approved"):
            moved = httpx.post(f"{api}/api/proposals/{proposal}/status", json={"status": step}, headers=headers)
            assert moved.status_code == 200, moved.text
        finish(run_deployment("deliver-proposal", f"proposal_id={proposal}"), run_deployment("embed-knowledge"))
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT status FROM proposals WHERE id = %s", (proposal,)).fetchone()[0] == "sent"
            assert conn.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 1  # unchanged: not again
        assert list((home / "outbox").glob("*.eml"))
        ran_deployments = {httpx.get(f"{prefect_api}/deployments/{s['deployment_id']}").json()["name"]
                           for s in states.values()}
        assert ran_deployments == set(deployments)  # every deployment ran on the workers

        # both workers took work (each may run one flow at a time); a worker may log a run's end a
        # moment after the server has recorded it, so its log is read again for a few seconds
        names = {s["name"] for s in states.values()}
        deadline = time.monotonic() + 30
        while True:
            ran = {w: {n for n in names if f"Flow run '{n}' - Finished in state Completed" in processes.log(w)}
                   for w in ("w1", "w2")}
            if ran["w1"] | ran["w2"] == names or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert ran["w1"] and ran["w2"] and ran["w1"] | ran["w2"] == names, ran
    finally:
        processes.stop_all()
    assert all(p.poll() is not None for _, p in processes.started)
