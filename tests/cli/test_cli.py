"""The `proposalflow` command as a user runs it: a subprocess, stdout/stderr, exit codes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from proposalflow.embedded import embedded_bin_dir
from tests.support import PROPOSALFLOW, run_cli

CSV = "Company,URL,E-mail\nAcme,acme.com,a@acme.com\nBeta,beta.io,b@beta.io\nBad,,not-an-email\n"


def test_ingest_twice_on_the_embedded_database_then_psql_agrees(prefect_api_url, embedded_home, tmp_path):
    """The 'done when' of the foundation: no DATABASE_URL, the embedded server, psql via db url."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    home = embedded_home
    env.update(PROPOSALFLOW_HOME=str(home), PREFECT_API_URL=prefect_api_url)
    path = tmp_path / "clients.csv"
    path.write_text(CSV)
    first = json.loads(run_cli(["ingest", "clients", str(path), "--json"], env).stdout)
    second = json.loads(run_cli(["ingest", "clients", str(path), "--json"], env).stdout)
    assert (first["inserted"], first["rejected"]) == (2, 1)
    assert first["rejects"][0]["row_number"] == 4 and "not-an-email" in first["rejects"][0]["reason"]
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 2)
    url = run_cli(["db", "url"], env).stdout.strip()
    assert url.startswith("postgresql://") and str(home) in url
    count = subprocess.run([str(embedded_bin_dir() / "psql"), url, "-tAc", "select count(*) from clients"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert count == "2"


def test_table_output_names_the_rejects(cli_env, tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text(CSV)
    result = run_cli(["ingest", "clients", str(path)], cli_env)
    assert "inserted" in result.stdout and "rejected" in result.stdout
    assert "not-an-email" in result.stdout and "ingestion_rejects" in result.stdout
    assert "Task run" in result.stderr  # progress and logs go to stderr


def test_a_missing_file_exits_non_zero_naming_it(cli_env, tmp_path):
    missing = tmp_path / "nope.csv"
    result = run_cli(["ingest", "clients", str(missing), "--json"], cli_env, check=False)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["error"]["type"] == "validation" and "nope.csv: no such file" in document["error"]["message"]
    plain = run_cli(["ingest", "clients", str(missing)], cli_env, check=False)
    assert plain.returncode == 1 and "nope.csv: no such file" in plain.stderr


def test_db_migrate_reports_up_to_date(cli_env):
    assert json.loads(run_cli(["db", "migrate", "--json"], cli_env).stdout) == {"applied": []}


def test_commands_that_run_no_flow_do_not_import_prefect(cli_env):
    probe = ("import sys\nfrom proposalflow.cli import app\n"
             "for args in (['--help'], ['db', 'url'], ['db', 'migrate', '--json'], ['google', 'status', '--json'],\n"
             "             ['db', 'backup', '--json'], ['serve', '--help']):\n"
             "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
             "print('PREFECT-IMPORTED' if 'prefect' in sys.modules else 'PREFECT-NOT-IMPORTED', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=120)
    assert "PREFECT-NOT-IMPORTED" in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
def test_sigkill_mid_ingestion_then_rerun_gives_exactly_the_expected_rows(cli_env, db, tmp_path):
    rows = 120_000
    path = tmp_path / "big.csv"
    with path.open("w") as fh:
        fh.write("name,website,email\n")
        for i in range(rows):
            fh.write(f"Company {i},company{i}.example.com,info@company{i}.example.com\n")
    process = subprocess.Popen([PROPOSALFLOW, "ingest", "clients", str(path), "--batch-rows", "5000"],
                               env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    try:
        for line in process.stderr:  # wait until it is well into the file
            if "read 30,000 rows" in line or time.monotonic() > deadline:
                break
        assert process.poll() is None, "the ingestion finished before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    assert process.returncode == -signal.SIGKILL
    assert db.execute("SELECT count(*) FROM clients").fetchone()[0] == 0  # nothing half-written
    summary = json.loads(run_cli(["ingest", "clients", str(path), "--json"], cli_env, timeout=600).stdout)
    assert (summary["read"], summary["inserted"], summary["rejected"]) == (rows, rows, 0)
    count, distinct = db.execute("SELECT count(*), count(DISTINCT natural_key) FROM clients").fetchone()
    assert count == distinct == rows
    assert db.execute("SELECT count(*) FROM client_staging").fetchone()[0] == 0
