"""Connections to the product's PostgreSQL: DATABASE_URL when set, else the embedded server.

Every connection is to a migrated database: the first connection of a process applies pending
migrations (cheap when there are none), so every command "migrates on first use".
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit

import psycopg

from .errors import ConfigurationError, DatabaseUnavailable
from .settings import Settings, get_settings

_migrated: set[str] = set()
_migrate_lock = threading.Lock()


def database_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if settings.database_url is not None:
        url = settings.database_url.get_secret_value()
        if urlsplit(url).scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
            raise ConfigurationError(
                "DATABASE_URL must be a postgresql:// URL (for Supabase: Project Settings → Database → "
                "Connection string → URI)"
            )
        return url.replace("postgresql+psycopg://", "postgresql://", 1)
    from .embedded import embedded_database_url

    return embedded_database_url(settings.home_dir)


def is_transaction_pooler(url: str) -> bool:
    """Supabase's transaction pooler (Supavisor, port 6543) cannot keep prepared statements."""
    parts = urlsplit(url)
    return parts.port == 6543 or "pooler.supabase.com" in (parts.hostname or "")


def connect_url(url: str, *, autocommit: bool = False, migrate: bool = True) -> psycopg.Connection:
    if migrate:
        ensure_migrated(url)
    kwargs = {"prepare_threshold": None} if is_transaction_pooler(url) else {}
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=15, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {_first_line(exc)}") from exc


def connect(settings: Settings | None = None, *, autocommit: bool = False) -> psycopg.Connection:
    """A new connection to the product database, migrated."""
    return connect_url(database_url(settings), autocommit=autocommit)


@contextmanager
def transaction(settings: Settings | None = None) -> Iterator[psycopg.Connection]:
    """A connection whose work commits on success and rolls back on any error."""
    with connect(settings) as conn:
        yield conn


def migrate_url(url: str) -> list[str]:
    """Apply pending migrations to the database at `url`; returns the files applied."""
    from .migrations import migrate

    with connect_url(url, autocommit=True, migrate=False) as conn:
        applied = migrate(conn)
    _migrated.add(url)
    return applied


def ensure_migrated(url: str) -> None:
    if url in _migrated:
        return
    with _migrate_lock:
        if url not in _migrated:
            migrate_url(url)


def redact(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
