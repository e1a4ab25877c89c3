"""`proposalflow demo`: the whole pipeline on the embedded database, offline, no keys."""

from __future__ import annotations

from importlib import resources

from .ingest import rejects_for_run, report_ingestion
from .output import JsonOption, emit_json, err, reported_errors
from .running import run_flow


def sample_path(name: str) -> str:
    return str(resources.files("proposalflow") / "data" / name)


def demo(as_json: bool = JsonOption) -> None:
    """Migrate, then ingest the sample clients shipped with the package."""
    with reported_errors(as_json):
        from ..database import database_url, redact

        err.print(f"database: {redact(database_url())}")
        summary = run_flow("ingest_clients", "ingest_clients", source=sample_path("sample_clients.csv"))
        rejects = rejects_for_run(summary["run_id"]) if summary["rejected"] else []
    if as_json:
        emit_json({"ingest": {**summary, "rejects": rejects}})
    else:
        report_ingestion(summary, rejects, as_json=False)
