"""The migration runner: numbered plain-SQL files from `sql/`, applied in order.

Each file runs in its own transaction and is recorded with its SHA-256 in `schema_migrations`.
A file that was applied and has since changed is refused: migrations are append-only.
A session advisory lock makes concurrent runners (two processes starting at once) take turns.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from .errors import MigrationError

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
_FILENAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x70726F70  # "prop": any constant shared by every runner of this product


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(sql_dir: Path = SQL_DIR) -> list[Migration]:
    if not sql_dir.is_dir():
        raise MigrationError(f"migrations folder {sql_dir} does not exist")
    migrations = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_lowercase_name.sql")
        migrations.append(Migration(match.group(1), path))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files in {sql_dir} share a number")
    return migrations


def migrate(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """Apply pending migrations. `conn` must be in autocommit mode. Returns the applied file names."""
    migrations = discover(sql_dir)
    applied_now: list[str] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version    text PRIMARY KEY,
                   filename   text NOT NULL,
                   checksum   text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        applied = {row[0]: (row[1], row[2]) for row in
                   conn.execute("SELECT version, filename, checksum FROM schema_migrations")}
        for migration in migrations:
            if migration.version in applied:
                filename, checksum = applied[migration.version]
                if checksum != migration.checksum:
                    raise MigrationError(
                        f"sql/{migration.path.name} was changed after it was applied as {filename} "
                        f"(checksum {checksum[:12]}… in the database, {migration.checksum[:12]}… on disk). "
                        "Applied migrations are append-only: restore the file and add a new numbered migration."
                    )
                continue
            try:
                with conn.transaction():
                    conn.execute(migration.sql)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, filename, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.path.name, migration.checksum),
                    )
            except psycopg.Error as exc:
                raise MigrationError(f"sql/{migration.path.name} failed and was rolled back: {exc}") from exc
            applied_now.append(migration.path.name)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def pending(conn: psycopg.Connection, sql_dir: Path = SQL_DIR) -> list[str]:
    """File names not yet applied (for readiness checks)."""
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()[0]
    done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")} if exists else set()
    return [m.path.name for m in discover(sql_dir) if m.version not in done]
