"""Shared test harness: one real PostgreSQL (+ pgvector) and one Prefect server per session.

PostgreSQL: `DATABASE_URL` if the environment sets it (any server with pgvector), else the
embedded server the product ships with, in a temporary folder. Each test gets a fresh database
cloned from a migrated template, so tests never see each other's rows.

Prefect: one `prefect_test_harness` per session (its temporary server takes ~10 s to start);
subprocess tests get its URL through PREFECT_API_URL so they do not start their own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "true"

REPO = Path(__file__).resolve().parent.parent
_EXTERNAL_URL = os.environ.pop("DATABASE_URL", None)  # tests set DATABASE_URL per test themselves
TEMPLATE = "pf_test_template"


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url)._replace(path=f"/{name}").geturl()


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory) -> str:
    """A superuser URL to the server tests create their databases on."""
    if _EXTERNAL_URL:
        yield _EXTERNAL_URL
        return
    from proposalflow.embedded import embedded_database_url, stop_embedded_server

    home = Path(tempfile.mkdtemp(prefix="pft-", dir="/tmp"))  # short: the socket lives in it
    url = embedded_database_url(home)
    yield url
    stop_embedded_server(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def embedded_home():
    """A PROPOSALFLOW_HOME for a test that starts its own embedded server; stopped afterwards.

    Outside pytest's tmp folder on purpose: that folder is mode 0700 (and reset to it by any
    pytest session starting meanwhile), and the server runs as another system user."""
    from proposalflow.embedded import stop_embedded_server

    home = Path(tempfile.mkdtemp(prefix="pfe-", dir="/tmp"))
    yield home
    stop_embedded_server(home)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(pg_admin_url) -> str:
    from proposalflow.migrations import migrate

    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    url = _with_database(pg_admin_url, TEMPLATE)
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    return url


def create_database(pg_admin_url: str, template: str | None = TEMPLATE) -> str:
    name = f"pf_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template}" if template else ""))
    return _with_database(pg_admin_url, name)


@pytest.fixture
def empty_database_url(pg_admin_url) -> str:
    """A new database with nothing in it (not even migrations)."""
    return create_database(pg_admin_url, template=None)


@pytest.fixture
def db_url(pg_admin_url, template_url, tmp_path, monkeypatch) -> str:
    """A fresh, migrated database, set as DATABASE_URL for the code under test."""
    url = create_database(pg_admin_url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROPOSALFLOW_HOME", str(tmp_path / "home"))
    from proposalflow.settings import get_settings

    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def db(db_url):
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def prefect_api_url() -> str:
    """One Prefect test server for the session; flows in this process report to it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture
def cli_env(db_url, prefect_api_url, tmp_path) -> dict:
    """Environment for running the `proposalflow` command as a subprocess against the test database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "JINA", "GOOGLE", "PROPOSALFLOW"))}
    env.update(DATABASE_URL=db_url, PROPOSALFLOW_HOME=str(tmp_path / "home"), PREFECT_API_URL=prefect_api_url)
    return env
