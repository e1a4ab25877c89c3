"""`proposalflow enrich [--client ID …] [--stale-days N] [--limit N]`: run the enrich-clients flow."""

from __future__ import annotations

import threading
from datetime import datetime

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .output import JsonOption, emit_json, err, out, reported_errors, summary_table
from .running import run_flow

REASON_WIDTH = 90


def enrich(
    client: list[str] = typer.Option(None, "--client", help="A client id to enrich (repeatable); default: those due."),
    stale_days: int = typer.Option(30, "--stale-days", min=0, help="Re-enrich clients enriched longer ago than this."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many clients."),
    as_json: bool = JsonOption,
) -> None:
    """Learn about clients from their websites: facts with their sources, in enriched_data."""
    with reported_errors(as_json):
        summary = run_enrichment(client or None, stale_days, limit)
    report_enrichment(summary, as_json)


def run_enrichment(client_ids: list[str] | None, stale_days: int, limit: int | None) -> dict:
    """Run the flow with a progress bar on stderr, fed by the outcomes recorded in the database."""
    from ..database import connect
    from ..enrichment.store import count_recorded_since, select_due

    with connect() as conn:  # the same selection the flow makes; also validates the ids up front
        due = select_due(conn, client_ids=client_ids, stale_days=stale_days, limit=limit)
        started: datetime = conn.execute("SELECT now()").fetchone()[0]
    if not due:
        err.print("no clients are due for enrichment")
        return empty_summary()
    ids = [c.id for c in due]
    done = threading.Event()

    def watch(progress: Progress, bar) -> None:
        with connect() as conn:
            while not done.wait(0.5):
                progress.update(bar, completed=count_recorded_since(conn, started, ids))
                conn.rollback()

    with Progress(TextColumn("enriching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not due) as progress:
        bar = progress.add_task("enrich", total=len(due))
        watcher = threading.Thread(target=watch, args=(progress, bar), daemon=True)
        watcher.start()
        try:
            return run_flow("enrich_clients", "enrich_clients", client_ids=client_ids, stale_days=stale_days,
                            limit=limit)
        finally:
            done.set()
            watcher.join(5)


def empty_summary() -> dict:
    return {"clients": 0, "ok": 0, "partial": 0, "failed": 0, "facts": 0, "pages": 0, "reader": {}, "results": []}


def report_enrichment(summary: dict, as_json: bool) -> None:
    if as_json:
        emit_json(summary)
        return
    reader = summary.get("reader", {})
    out.print(summary_table("Enrichment", {
        "clients": summary["clients"], "ok": summary["ok"], "partial": summary["partial"],
        "failed": summary["failed"], "facts": summary["facts"],
        "pages fetched": reader.get("fetched", 0), "pages from cache": reader.get("cache_hits", 0),
        "retries": reader.get("retries", 0), "fallbacks": reader.get("fallbacks", 0),
    }))
    if not summary["results"]:
        return
    table = Table(title_justify="left")
    for column, justify in (("client", "left"), ("status", "left"), ("facts", "right"), ("pages", "right"),
                            ("reason", "left")):
        table.add_column(column, justify=justify, overflow="fold")
    colours = {"ok": "green", "partial": "yellow", "failed": "red"}
    for result in summary["results"]:
        reason = (result["error"] or "")[:REASON_WIDTH] + ("…" if len(result["error"] or "") > REASON_WIDTH else "")
        table.add_row(result["name"], f"[{colours[result['status']]}]{result['status']}[/]", str(result["facts"]),
                      str(result["pages"]), reason)
    out.print(table)


def demo_step(as_json: bool) -> dict:
    """The demo's enrich step: the sample clients' sites, offline, from the shipped snapshots."""
    from contextlib import closing
    from importlib import resources
    from pathlib import Path

    from ..database import connect
    from ..enrichment.snapshots import home_urls, seed_cache
    from ..reader import DatabaseCache
    from ..settings import get_settings

    sites = Path(str(resources.files("proposalflow") / "data" / "sites"))
    with closing(DatabaseCache.connect(get_settings())) as cache:
        seeded = seed_cache(cache, sites)
    err.print(f"website snapshots: {seeded['seeded']} pages put in the reader's cache, "
              f"{seeded['already_cached']} already there")
    with connect() as conn:
        ids = [r[0] for r in conn.execute("SELECT id::text FROM clients WHERE website = ANY(%s) ORDER BY name",
                                          (home_urls(sites),))]
    summary = run_enrichment(ids, 30, None) if ids else empty_summary()
    if not as_json:
        report_enrichment(summary, as_json=False)
    return {**summary, "snapshots": seeded}

