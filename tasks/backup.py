"""Tasks of the backup-database flow. Each is one call into proposalflow.backup."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from proposalflow import backup
from proposalflow.database import database_url
from proposalflow.settings import get_settings

from .events import emit
from .retry import retry_on_transient


def _folder(folder: str | None) -> Path:
    return Path(folder).expanduser() if folder else get_settings().backup_folder


@task(name="dump-database", retries=1, retry_delay_seconds=[60], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, timeout_seconds=backup.DUMP_TIMEOUT_SECONDS)
def dump_database(folder: str | None = None) -> dict:
    """pg_dump (custom format) of the product schema, with its manifest beside it."""
    settings = get_settings()
    made = backup.dump_database(database_url(settings), _folder(folder), pg_bin=settings.pg_bin_dir)
    get_run_logger().info("wrote %s (%s bytes, pg_dump %s for server %s)", made.path,
                          f"{made.manifest['size_bytes']:,}", made.manifest["pg_dump_version"],
                          made.manifest["server_version"])
    return made.as_dict()


@task(name="verify-backup", cache_policy=NO_CACHE, timeout_seconds=1800)
def verify_backup(path: str) -> dict:
    """pg_restore --list reads it, its checksum matches, every table has its data; then announce it."""
    verification = backup.verify_backup(Path(path), pg_bin=get_settings().pg_bin_dir)
    manifest = backup.read_manifest(Path(path))
    emit("proposalflow.database.backed_up", "backup", Path(path).name, name=Path(path).name,
         payload={"path": path, "size_bytes": manifest.get("size_bytes"), "sha256": verification.sha256,
                  "tables": manifest.get("tables", {})})
    get_run_logger().info("verified %s: %d archive entries", Path(path).name, verification.entries)
    return verification.as_dict()


@task(name="prune-backups", cache_policy=NO_CACHE)
def prune_backups(folder: str | None = None, keep: int | None = None) -> list[str]:
    """Keep the newest `keep` backups (PROPOSALFLOW_BACKUP_KEEP), remove the rest."""
    removed = backup.prune_backups(_folder(folder), keep or get_settings().backup_keep)
    if removed:
        get_run_logger().info("removed %d old backup(s): %s", len(removed), ", ".join(p.name for p in removed))
    return [str(p) for p in removed]
