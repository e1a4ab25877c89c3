import shutil

import psycopg
import pytest

from proposalflow.errors import MigrationError
from proposalflow.migrations import SQL_DIR, discover, migrate, pending


def columns(conn, table):
    return {r[0]: r[1] for r in conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s", (table,))}


def test_migrations_apply_to_an_empty_database_and_are_idempotent(empty_database_url):
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        applied = migrate(conn)
        assert applied == [m.path.name for m in discover()]
        assert migrate(conn) == []
        assert pending(conn) == []
        recorded = conn.execute("SELECT filename, length(checksum) FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in recorded] == applied and all(r[1] == 64 for r in recorded)


def test_the_seed_tables_have_the_seed_columns(db):
    seed = {
        "users": {"id", "email", "role", "created_at", "updated_at"},
        "clients": {"id", "name", "contact_info", "enriched_data", "created_at", "updated_at"},
        "proposals": {"id", "client_id", "status", "content", "doc_link", "created_at", "updated_at"},
        "knowledge_base": {"id", "category", "content", "metadata", "created_at", "updated_at"},
    }
    for table, expected in seed.items():
        assert expected <= set(columns(db, table)), table
    assert columns(db, "clients")["contact_info"] == "jsonb"
    default = db.execute("SELECT column_default FROM information_schema.columns"
                         " WHERE table_name = 'clients' AND column_name = 'id'").fetchone()[0]
    assert default == "uuid_generate_v4()"
    assert db.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()


def test_updated_at_is_maintained_by_trigger(db):
    client_id, created = db.execute(
        "INSERT INTO clients (name, natural_key) VALUES ('Acme', 'name:acme') RETURNING id, updated_at").fetchone()
    db.execute("SELECT pg_sleep(0.01)")
    db.execute("UPDATE clients SET name = 'Acme Inc' WHERE id = %s", (client_id,))
    updated = db.execute("SELECT updated_at FROM clients WHERE id = %s", (client_id,)).fetchone()[0]
    assert updated > created


def test_a_changed_applied_migration_is_refused(empty_database_url, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        migrate(conn, sql_dir)
        target = sorted(sql_dir.glob("*.sql"))[1]
        target.write_text(target.read_text() + "\n-- edited after it was applied\n")
        with pytest.raises(MigrationError, match=target.name) as error:
            migrate(conn, sql_dir)
        assert "append-only" in str(error.value)


def test_a_failing_migration_is_rolled_back_and_named(empty_database_url, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(SQL_DIR, sql_dir)
    (sql_dir / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT * FROM no_such_table;\n")
    with psycopg.connect(empty_database_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match="9999_broken.sql"):
            migrate(conn, sql_dir)
        assert conn.execute("SELECT to_regclass('half_done')").fetchone()[0] is None
        assert pending(conn, sql_dir) == ["9999_broken.sql"]
