"""`proposalflow db backup` / `db restore` as an operator runs them."""

import json
from pathlib import Path

import psycopg

from tests.support import run_cli

CSV = "name,website\nAcme,acme.com\nBeta,beta.io\nGamma,gamma.org\n"


def test_backup_then_restore_into_the_wiped_database(cli_env, db_url, tmp_path):
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO clients (name, natural_key) SELECT 'c' || i, 'name:c' || i FROM generate_series(1, 50) i")
    env = {**cli_env, "PROPOSALFLOW_BACKUP_DIR": str(tmp_path / "backups"), "PROPOSALFLOW_BACKUP_KEEP": "2"}

    first = json.loads(run_cli(["db", "backup", "--json"], env).stdout)
    assert first["tables"]["clients"] == 50 and Path(first["path"]).parent == tmp_path / "backups"
    plain = run_cli(["db", "backup"], env)  # a person's view: the file, verified, and the rows
    assert "verified" in plain.stdout and "clients" in plain.stdout and "backing up" in plain.stderr
    third = json.loads(run_cli(["db", "backup", "--json"], env).stdout)
    assert third["removed"] == [first["path"]]  # PROPOSALFLOW_BACKUP_KEEP=2

    refused = run_cli(["db", "restore", third["path"], "--json"], env, check=False)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["type"] == "conflict"

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    restored = json.loads(run_cli(["db", "restore", third["path"], "--json"], env).stdout)
    assert restored["matches_manifest"] and restored["tables"]["clients"] == 50
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM clients").fetchone()[0] == 50


def test_restore_of_a_missing_file_names_it(cli_env, tmp_path):
    result = run_cli(["db", "restore", str(tmp_path / "nope.dump"), "--json"], cli_env, check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == {"type": "not-found", "errors": [],
                                                  "message": f"{tmp_path / 'nope.dump'}: no such backup file"}
