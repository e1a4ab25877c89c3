"""PostgreSQL ─ backup-database ─▶ PROPOSALFLOW_BACKUP_DIR/proposalflow-<UTC time>.dump + .json manifest
                                   (verified with pg_restore --list; the newest PROPOSALFLOW_BACKUP_KEEP kept)"""

from __future__ import annotations

from prefect import flow

from tasks.backup import dump_database, prune_backups, verify_backup


@flow(name="backup-database")
def backup_database(folder: str | None = None, keep: int | None = None) -> dict:
    """Back up the product schema (pg_dump, custom format), verify it, and apply retention.

    `folder` defaults to PROPOSALFLOW_BACKUP_DIR (else PROPOSALFLOW_HOME/backups), `keep` to
    PROPOSALFLOW_BACKUP_KEEP (7). Restore with `proposalflow db restore FILE` into an empty database.
    """
    made = dump_database(folder)
    verified = verify_backup(made["path"])
    removed = prune_backups(folder, keep)
    return {**made, "verified_entries": verified["entries"], "removed": removed}
