"""`proposalflow db …`: migrations, the database's address, backups and restores."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import JsonOption, emit_json, err, out, reported_errors, summary_table

app = typer.Typer(help="The product database: migrations, URL, embedded server.", no_args_is_help=True)


@app.command("migrate")
def migrate(as_json: bool = JsonOption) -> None:
    """Apply pending SQL migrations from sql/ (every command also does this on first use)."""
    with reported_errors(as_json):
        from ..database import database_url, migrate_url

        applied = migrate_url(database_url())
    if as_json:
        emit_json({"applied": applied})
    elif applied:
        out.print("applied: " + ", ".join(applied))
    else:
        out.print("the database is up to date")


@app.command("url")
def url() -> None:
    """Print the database URL (starts the embedded server if needed), e.g. psql "$(proposalflow db url)"."""
    with reported_errors(False):
        from ..database import database_url

        typer.echo(database_url())


@app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL server (it is otherwise left running for the next command)."""
    from ..embedded import stop_embedded_server
    from ..settings import get_settings

    settings = get_settings()
    if not settings.uses_embedded_database:
        out.print("DATABASE_URL is set: there is no embedded server to stop")
        return
    out.print("stopped" if stop_embedded_server(settings.home_dir) else "not running")


@app.command("backup")
def backup(
    folder: Path = typer.Option(None, "--folder", help="Where to write (default PROPOSALFLOW_BACKUP_DIR, "
                                                        "else PROPOSALFLOW_HOME/backups)."),
    keep: int = typer.Option(None, "--keep", min=1, help="Backups to keep (default PROPOSALFLOW_BACKUP_KEEP, 7)."),
    as_json: bool = JsonOption,
) -> None:
    """pg_dump (custom format) the product schema, verify it with pg_restore --list, keep the newest N."""
    with reported_errors(as_json):
        from ..backup import backup_database
        from ..database import database_url
        from ..settings import get_settings

        settings = get_settings()
        target = folder or settings.backup_folder
        err.print(f"backing up to {target} …")
        result = backup_database(database_url(settings), target, keep=keep or settings.backup_keep,
                                 pg_bin=settings.pg_bin_dir)
    if as_json:
        emit_json(result)
        return
    out.print(f"[bold]Backup[/] {result['path']} ({result['size_bytes']:,} bytes, verified)", highlight=False)
    out.print(summary_table("rows per table", result["tables"]))
    for removed in result["removed"]:
        out.print(f"removed (retention): {removed}", highlight=False)


@app.command("restore")
def restore(
    file: Path = typer.Argument(..., help="A .dump file written by `proposalflow db backup` or backup-database."),
    into: str = typer.Option(None, "--into", help="PostgreSQL URL of an EMPTY database (default: the "
                                                  "configured one — DATABASE_URL or the embedded server)."),
    as_json: bool = JsonOption,
) -> None:
    """Restore a backup into an empty database, in one transaction; row counts are checked against its manifest."""
    with reported_errors(as_json):
        from ..backup import restore_database
        from ..database import database_url, redact
        from ..settings import get_settings

        settings = get_settings()
        target = into or database_url(settings)
        err.print(f"restoring {file} into {redact(target)} …")
        result = restore_database(file, target, pg_bin=settings.pg_bin_dir)
    if as_json:
        emit_json(result)
        return
    out.print(f"[bold]Restored[/] {result['path']}"
              + (" (row counts match its manifest)" if result["matches_manifest"] else ""), highlight=False)
    out.print(summary_table("rows per table", result["tables"]))
