"""Connections: the embedded server shared by concurrent processes, migrations that take turns."""

import json
import os
import subprocess

import psutil
import psycopg

from proposalflow.database import is_transaction_pooler, redact
from proposalflow.migrations import discover
from tests.support import PROPOSALFLOW


def test_concurrent_processes_share_one_embedded_server(embedded_home):
    home = embedded_home
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["PROPOSALFLOW_HOME"] = str(home)
    processes = [subprocess.Popen([PROPOSALFLOW, "db", "url"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        outputs = [p.communicate(timeout=120) for p in processes]
        assert [p.returncode for p in processes] == [0, 0, 0], outputs
        urls = {out.strip() for out, _ in outputs}
        assert len(urls) == 1
        with psycopg.connect(urls.pop()) as conn:
            assert conn.execute("SELECT current_database()").fetchone()[0] == "proposalflow"
        postmasters = [p for p in psutil.process_iter(["name", "cmdline"])
                       if p.info["name"] == "postgres" and str(home) in " ".join(p.info["cmdline"] or [])]
        assert len(postmasters) == 1  # the postmaster; its children carry no -D argument
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()


def test_concurrent_migrations_apply_each_file_once(empty_database_url, tmp_path):
    env = {**os.environ, "DATABASE_URL": empty_database_url, "PROPOSALFLOW_HOME": str(tmp_path)}
    processes = [subprocess.Popen([PROPOSALFLOW, "db", "migrate", "--json"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], results
    applied = [name for out, _ in results for name in json.loads(out)["applied"]]
    assert sorted(applied) == sorted(m.path.name for m in discover())


def test_supabase_transaction_pooler_is_recognised_and_passwords_are_redacted():
    assert is_transaction_pooler("postgresql://u:p@aws-0-eu-central-1.pooler.supabase.com:6543/postgres")
    assert is_transaction_pooler("postgresql://u:p@db.example.com:6543/postgres")
    assert not is_transaction_pooler("postgresql://u:p@db.abcd.supabase.co:5432/postgres?sslmode=require")
    assert redact("postgresql://postgres:s3cret@db.x.supabase.co:5432/postgres") == \
        "postgresql://postgres:***@db.x.supabase.co:5432/postgres"


def test_a_bad_database_url_is_a_clear_error(tmp_path):
    env = {**os.environ, "DATABASE_URL": "mysql://root@localhost/db", "PROPOSALFLOW_HOME": str(tmp_path)}
    result = subprocess.run([PROPOSALFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "DATABASE_URL must be a postgresql:// URL" in result.stderr
    env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    result = subprocess.run([PROPOSALFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cannot connect to the database" in result.stderr


class _PostgresHandshakeServer:
    """Speaks the first step of PostgreSQL's wire protocol: it records whether the client opened
    with an SSLRequest, answers 'N' (no TLS here) and closes. Enough to see what sslmode did."""

    SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")

    def __init__(self) -> None:
        import socket
        import threading

        self.openings: list[bytes] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            with conn:
                opening = conn.recv(8)
                self.openings.append(opening)
                if opening == self.SSL_REQUEST:
                    conn.sendall(b"N")

    def close(self) -> None:
        self._socket.close()


def test_sslmode_in_database_url_is_honoured():
    from proposalflow.database import connect_url
    from proposalflow.errors import DatabaseUnavailable

    server = _PostgresHandshakeServer()
    try:
        url = f"postgresql://postgres:secret@127.0.0.1:{server.port}/postgres"
        try:
            connect_url(url + "?sslmode=require", migrate=False)
        except DatabaseUnavailable as exc:
            assert "SSL" in str(exc)  # libpq: the server does not support SSL, but SSL was required
        else:
            raise AssertionError("sslmode=require connected without TLS")
        assert server.openings == [server.SSL_REQUEST]

        server.openings.clear()
        try:
            connect_url(url + "?sslmode=disable", migrate=False)
        except DatabaseUnavailable:
            pass  # the fake closes after the first message
        assert server.openings and server.openings[0] != server.SSL_REQUEST  # a plain StartupMessage
    finally:
        server.close()
