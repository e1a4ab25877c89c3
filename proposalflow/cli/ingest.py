"""`proposalflow ingest clients PATH_OR_URL`."""

from __future__ import annotations

import typer
from rich.table import Table

from .output import JsonOption, emit_json, err, out, reported_errors, summary_table
from .running import run_flow

app = typer.Typer(help="Bring records into the product.", no_args_is_help=True)

REJECTS_SHOWN = 10


@app.command("clients")
def clients(
    source: str = typer.Argument(..., help="A CSV, JSON, JSON Lines or XLSX file, or an http(s) URL to one."),
    batch_rows: int = typer.Option(None, "--batch-rows", min=100, help="Rows per batch (default 20,000)."),
    as_json: bool = JsonOption,
) -> None:
    """Validate and upsert client records; rejected rows are kept with their reasons."""
    with reported_errors(as_json):
        err.print(f"ingesting {source} …")
        summary = run_flow("ingest_clients", "ingest_clients", source=source, batch_rows=batch_rows)
        rejects = rejects_for_run(summary["run_id"]) if summary["rejected"] else []
    report_ingestion(summary, rejects, as_json)


def rejects_for_run(run_id: str) -> list[dict]:
    from ..clients.ingest import rejects_of
    from ..database import connect

    with connect() as conn:
        return rejects_of(conn, run_id, limit=REJECTS_SHOWN)


def report_ingestion(summary: dict, rejects: list[dict], as_json: bool) -> None:
    if as_json:
        emit_json({**summary, "rejects": rejects})
        return
    out.print(f"[bold]Ingested[/] {summary['source']}", highlight=False)
    out.print(summary_table("", {
        "read": summary["read"], "inserted": summary["inserted"], "updated": summary["updated"],
        "unchanged": summary["unchanged"], "rejected": summary["rejected"],
    }))
    if rejects:
        table = Table(title=f"Rejected rows (first {len(rejects)} of {summary['rejected']})", title_justify="left")
        table.add_column("row", justify="right")
        table.add_column("column")
        table.add_column("reason")
        for r in rejects:
            table.add_row(str(r["row_number"]), r["column"] or "", r["reason"])
        out.print(table)
        out.print(f"All rejects: select * from ingestion_rejects where run_id = '{summary['run_id']}';")
