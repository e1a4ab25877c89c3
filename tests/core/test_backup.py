"""Backups: pg_dump with the binaries that match the server, verified, kept N deep, restored whole."""

import json
import os

import psycopg
import pytest

from proposalflow import backup
from proposalflow.clients import ingest
from proposalflow.clients.sources import resolve_source
from proposalflow.errors import BackupFailed, ConfigurationError, Conflict

CSV = "name,website,email\nAcme,acme.com,a@acme.com\nBeta,beta.io,b@beta.io\nBad,,not-an-email\n"


def checksums(url: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of every row's text, per table of the product schema."""
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        return {t: conn.execute(
            f'SELECT count(*), md5(coalesce(string_agg(t::text, chr(10) ORDER BY t::text), \'\')) FROM "{t}" t'
        ).fetchone() for t in tables}


def populate(conn, tmp_path) -> None:
    path = tmp_path / "clients.csv"
    path.write_text(CSV)
    staged = ingest.stage_source(conn, resolve_source(str(path), tmp_path), batch_rows=100)
    ingest.apply_run(conn, staged.run_id)
    conn.execute("INSERT INTO users (email, role) VALUES ('ops@agency.test', 'admin')")
    # other tables' columns belong to other features: a probe table of our own covers the types
    conn.execute("CREATE TABLE backup_probe (id int PRIMARY KEY, embedding vector(3), note text, doc jsonb)")
    conn.execute("INSERT INTO backup_probe SELECT i, ARRAY[i, i * 0.5, -i]::vector, repeat('x', i), %s "
                 "FROM generate_series(1, 500) i",
                 (json.dumps({"sections": [{"title": "Scope", "body": "naïve café — 100 €"}]}),))
    conn.commit()


def test_backup_wipe_restore_gives_the_same_rows(db_url, tmp_path):
    with psycopg.connect(db_url) as conn:
        populate(conn, tmp_path)
    before = checksums(db_url)
    assert before["clients"][0] == 2 and before["backup_probe"][0] == 500

    result = backup.backup_database(db_url, tmp_path / "backups", keep=3)
    assert result["tables"]["clients"] == 2 and result["tables"]["backup_probe"] == 500
    assert result["pg_dump_version"].split(".")[0] == result["server_version"].split(".")[0]

    with psycopg.connect(db_url, autocommit=True) as conn:  # the wipe
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    assert checksums(db_url) == {}

    restored = backup.restore_database(result["path"], db_url)
    assert restored["matches_manifest"] is True
    assert checksums(db_url) == before
    with psycopg.connect(db_url) as conn:  # the restored schema still works: defaults, triggers, vectors
        conn.execute("INSERT INTO clients (name, natural_key) VALUES ('Gamma', 'name:gamma')")
        assert conn.execute("SELECT embedding <-> '[1,0.5,-1]' FROM backup_probe WHERE id = 1").fetchone()[0] == 0


def test_restore_into_a_fresh_database_and_refusal_of_a_non_empty_one(db_url, empty_database_url, tmp_path):
    with psycopg.connect(db_url) as conn:
        populate(conn, tmp_path)
    result = backup.backup_database(db_url, tmp_path / "backups", keep=3)
    backup.restore_database(result["path"], empty_database_url)
    assert checksums(empty_database_url) == checksums(db_url)
    with pytest.raises(Conflict, match="not empty: schema public has .* restore into an empty database"):
        backup.restore_database(result["path"], db_url)


def test_retention_keeps_the_newest_n(db_url, tmp_path):
    folder = tmp_path / "backups"
    paths = [backup.backup_database(db_url, folder, keep=2)["path"] for _ in range(3)]
    assert [str(p) for p in backup.list_backups(folder)] == paths[1:]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [os.path.basename(p) for p in paths[1:]] + [os.path.basename(p).replace(".dump", ".json") for p in paths[1:]])


def test_a_damaged_backup_fails_verification(db_url, tmp_path):
    result = backup.backup_database(db_url, tmp_path / "backups", keep=2)
    path = result["path"]
    with open(path, "r+b") as fh:
        fh.truncate(os.path.getsize(path) // 2)
    with pytest.raises(BackupFailed, match="proposalflow-.*dump"):
        backup.verify_backup(path)


def test_programs_match_the_server_major_version(db):
    server_major = db.info.server_version // 10000
    assert backup.choose_programs(server_major).major == server_major
    older = [p for p in (backup.programs_in(d) for d in backup.program_dirs()) if p and p.major < server_major]
    for programs in older:  # an older pg_dump is never chosen for a newer server
        assert backup.choose_programs(programs.major).major == programs.major
    with pytest.raises(ConfigurationError, match="no pg_dump/pg_restore of version 99"):
        backup.choose_programs(99)


def test_a_database_without_extensions_or_tables_backs_up(empty_database_url, tmp_path):
    result = backup.backup_database(empty_database_url, tmp_path / "backups", keep=1)
    assert result["tables"] == {} and result["verified_entries"] >= 0
