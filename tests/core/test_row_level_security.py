"""Row Level Security as Supabase's REST API would meet it: SET ROLE authenticated/anon and the
request's JWT claims in `request.jwt.claims` (sql/0041_row_level_security.sql)."""

import json
import uuid

import psycopg
import pytest


def as_caller(conn: psycopg.Connection, db_role: str, claims: dict | None):
    """Inside the current transaction, act as PostgREST does for a request with these claims."""
    conn.execute(f"SET LOCAL ROLE {db_role}")
    conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims) if claims else "",))


def claims(role: str | None, sub: str | None = None, where: str = "app_metadata") -> dict:
    document = {"sub": sub or str(uuid.uuid4()), "role": "authenticated", "aud": "authenticated"}
    if role and where == "app_metadata":
        document["app_metadata"] = {"role": role}
    elif role:
        document[where] = role
    return document


@pytest.fixture
def seeded(db):
    client_id = db.execute("INSERT INTO clients (name, natural_key) VALUES ('Acme', 'name:acme') RETURNING id").fetchone()[0]
    db.execute("INSERT INTO audit_log (action, resource) VALUES ('create', 'clients')")
    return client_id


def run_as(db_url, db_role, caller_claims, sql, params=()):
    """Run one statement as the caller, in a transaction that is rolled back; return rows or the error."""
    with psycopg.connect(db_url) as conn:
        try:
            as_caller(conn, db_role, caller_claims)
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else cur.rowcount
        except psycopg.Error as exc:
            return exc
        finally:
            conn.rollback()


def test_every_table_has_row_level_security(db):
    rows = db.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity ORDER BY 1""").fetchall()
    assert [r[0] for r in rows] == [], (
        "tables without Row Level Security: add `SELECT protect_table('<table>', 'viewer', <'editor' or NULL>);` "
        "to the migration that creates them (see sql/0041_row_level_security.sql)")


def test_viewer_reads_but_cannot_write(db_url, seeded):
    viewer = claims("viewer")
    assert len(run_as(db_url, "authenticated", viewer, "SELECT id FROM clients")) == 1
    refused = run_as(db_url, "authenticated", viewer,
                     "INSERT INTO clients (name, natural_key) VALUES ('Beta', 'name:beta')")
    assert isinstance(refused, psycopg.errors.InsufficientPrivilege) and "row-level security" in str(refused)
    assert run_as(db_url, "authenticated", viewer, "UPDATE clients SET name = 'X'") == 0  # sees nothing to update
    assert run_as(db_url, "authenticated", viewer, "DELETE FROM clients") == 0


def test_editor_writes_clients_but_not_pipeline_tables(db_url, seeded):
    editor = claims("editor", where="user_role")  # a custom access token hook's claim
    assert run_as(db_url, "authenticated", editor,
                  "INSERT INTO clients (name, natural_key) VALUES ('Beta', 'name:beta')") == 1
    assert run_as(db_url, "authenticated", editor, "UPDATE clients SET name = 'Acme Ltd'") == 1
    refused = run_as(db_url, "authenticated", editor,
                     "INSERT INTO ingestion_runs (source) VALUES ('x.csv')")
    assert isinstance(refused, psycopg.errors.InsufficientPrivilege)
    assert run_as(db_url, "authenticated", editor, "SELECT * FROM audit_log") == []  # admins only


def test_anon_and_role_less_callers_see_nothing(db_url, seeded):
    assert run_as(db_url, "anon", None, "SELECT id FROM clients") == []
    assert run_as(db_url, "authenticated", claims(None), "SELECT id FROM clients") == []
    assert run_as(db_url, "authenticated", claims("superuser"), "SELECT id FROM clients") == []
    assert run_as(db_url, "anon", None, "SELECT * FROM knowledge_base") == []
    assert run_as(db_url, "anon", None, "SELECT * FROM schema_migrations") == []


def test_stored_role_applies_when_the_token_has_none(db, db_url, seeded):
    sub = str(uuid.uuid4())
    db.execute("INSERT INTO users (id, email, role) VALUES (%s, 'e@x.io', 'editor')", (sub,))
    caller = claims(None, sub=sub)
    assert run_as(db_url, "authenticated", caller, "UPDATE clients SET name = 'Acme 2'") == 1
    # a user sees their own row only; an admin sees every row
    assert [str(r[0]) for r in run_as(db_url, "authenticated", caller, "SELECT id FROM users")] == [sub]
    db.execute("INSERT INTO users (email, role) VALUES ('other@x.io', 'viewer')")
    assert len(run_as(db_url, "authenticated", claims("admin"), "SELECT id FROM users")) == 2
    assert run_as(db_url, "authenticated", caller, "UPDATE users SET role = 'admin'") == 0


def test_admin_reads_the_audit_log_which_is_append_only(db, db_url, seeded):
    assert len(run_as(db_url, "authenticated", claims("admin"), "SELECT * FROM audit_log")) == 1
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE audit_log SET action = 'x'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM audit_log")


def test_auth_shim_reads_the_request_claims(db_url):
    sub = str(uuid.uuid4())
    rows = run_as(db_url, "authenticated", claims("viewer", sub=sub),
                  "SELECT auth.uid()::text, auth.role(), auth.jwt() -> 'app_metadata' ->> 'role', app_role()")
    assert rows == [(sub, "authenticated", "viewer", "viewer")]


def test_internal_tables_are_hidden_even_from_admins(db, db_url):
    hidden = ["reader_cache", "checkpoints", "checkpoint_writes", "checkpoint_blobs", "client_staging",
              "schema_migrations", "google_credentials"]
    existing = {r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    for table in [t for t in hidden if t in existing]:
        rls, policies = db.execute(
            "SELECT c.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) "
            "FROM pg_class c WHERE c.oid = %s::regclass", (table,)).fetchone()
        assert rls and policies == 0, f"{table}: REST callers could see it"
    db.execute("WITH r AS (INSERT INTO ingestion_runs (source) VALUES ('x') RETURNING id) "
               "INSERT INTO client_staging (run_id, row_number, natural_key, name, contact_info, source) "
               "SELECT id, 1, 'k', 'n', '{}', 's' FROM r")
    assert run_as(db_url, "authenticated", claims("admin"), "SELECT count(*) FROM client_staging") == [(0,)]
