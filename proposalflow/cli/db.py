"""`proposalflow db …`: migrations and the database's address."""

from __future__ import annotations

import typer

from .output import JsonOption, emit_json, out, reported_errors

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
