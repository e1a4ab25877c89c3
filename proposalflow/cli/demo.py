"""`proposalflow demo`: the whole pipeline on the embedded database, offline, no keys.

Each pipeline stage adds one step to STEPS: a function that runs its flow on the sample data,
prints its report (unless --json) and returns its JSON section.
"""

from __future__ import annotations

from importlib import resources
from typing import Callable

from .ingest import rejects_for_run, report_ingestion
from .output import JsonOption, emit_json, err, reported_errors
from .running import run_flow


def sample_path(name: str) -> str:
    """A file or folder of the sample data shipped inside the package (proposalflow/data/)."""
    return str(resources.files("proposalflow") / "data" / name)


def ingest_step(as_json: bool) -> dict:
    summary = run_flow("ingest_clients", "ingest_clients", source=sample_path("sample_clients.csv"))
    rejects = rejects_for_run(summary["run_id"]) if summary["rejected"] else []
    if not as_json:
        report_ingestion(summary, rejects, as_json=False)
    return {**summary, "rejects": rejects}


# (name, step) in pipeline order
STEPS: list[tuple[str, Callable[[bool], dict]]] = [
    ("ingest", ingest_step),
]


def demo(as_json: bool = JsonOption) -> None:
    """Run the pipeline on the sample data shipped with the package."""
    report: dict = {}
    with reported_errors(as_json):
        from ..database import database_url, redact

        err.print(f"database: {redact(database_url())}")
        for name, step in STEPS:
            err.print(f"[bold]== {name} ==[/]")
            report[name] = step(as_json)
    if as_json:
        emit_json(report)
