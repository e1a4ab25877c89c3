"""The CLI's JSON log of real runs with secrets configured: ids present, secrets absent."""

import json
from pathlib import Path

from tests.support import run_cli

OPENAI_KEY = "sk-test-0123456789SECRETabcdefghijkl"
JWT_SECRET = "a-jwt-secret-that-is-long-enough-0123456789"
DB_PASSWORD = "Db-Pa55-w0rd-secret"
CSV = "name,website\nAcme,acme.com\nBeta,beta.io\n"


def test_a_run_with_secrets_configured_logs_ids_and_no_secret(cli_env, db_url, tmp_path):
    # the embedded server trusts local connections, so a password in the URL is carried but unused
    url_with_password = db_url.replace("postgresql://postgres:@", f"postgresql://postgres:{DB_PASSWORD}@")
    env = {**cli_env, "DATABASE_URL": url_with_password, "OPENAI_API_KEY": OPENAI_KEY,
           "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "PROPOSALFLOW_JWT_SECRET": JWT_SECRET}
    path = tmp_path / "clients.csv"
    path.write_text(CSV)
    ok = run_cli(["ingest", "clients", str(path), "--json"], env)
    failed = run_cli(["ingest", "clients", str(tmp_path / "missing.csv"), "--json"], env, check=False)
    assert failed.returncode == 1

    log_dir = Path(env["PROPOSALFLOW_HOME"]) / "logs"
    everything = "".join(p.read_text() for p in log_dir.iterdir()) + ok.stdout + ok.stderr + failed.stdout + failed.stderr
    for secret in (OPENAI_KEY, JWT_SECRET, DB_PASSWORD):
        assert secret not in everything

    records = [json.loads(line) for line in (log_dir / "cli.log").read_text().splitlines()]
    runs = {}
    for r in records:
        runs.setdefault(r["run_id"], []).append(r)
    assert len(runs) == 2  # one run id per invocation, on every line of it
    first, second = runs.values()
    assert [r["message"] for r in first if r["logger"] == "proposalflow.cli"] == [
        "command started", "flow run Completed", "command finished"]
    assert first[0]["command"] == "ingest clients" and first[-1]["exit_code"] == 0
    flow_run_id = next(r["flow_run_id"] for r in first if r["message"] == "flow run Completed")
    prefect_lines = [r for r in first if r["logger"].startswith("prefect.")]
    assert prefect_lines and {r["flow_run_id"] for r in prefect_lines if r.get("flow_run_id")} == {flow_run_id}
    failure = next(r for r in second if r["message"].startswith("command failed"))
    assert failure["level"] == "WARNING" and failure["error_type"] == "validation" and "missing.csv" in failure["message"]
    assert second[-1]["exit_code"] == 1
