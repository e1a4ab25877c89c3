"""`proposalflow demo`: the whole pipeline on the embedded database, offline, no keys.

Each pipeline stage adds one step to STEPS: a function that runs its flow on the sample data,
prints its report (unless --json) and returns its JSON section.
"""

from __future__ import annotations

import inspect
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


def enrich_step(as_json: bool) -> dict:
    """Enrich the sample clients offline: their website snapshots go into the reader's cache first."""
    from .enrich import demo_step

    return demo_step(as_json)


def knowledge_step(as_json: bool) -> dict:
    """Embed the sample knowledge folder (a fictional agency's services, case studies, pricing, team),
    then show one search over it."""
    from .kb import report

    summary = run_flow("embed_knowledge", "embed_knowledge", folder=sample_path("knowledge"), prune=True)
    if not as_json:
        report(summary, as_json=False)
    from ..database import connect
    from ..knowledge.embedders import make_embedder
    from ..knowledge.search import search

    question = "What does paid ads management cost per month?"
    with connect(autocommit=True) as conn:
        passages = search(conn, make_embedder(), question, k=3)
    if not as_json:
        err.print(f"search: {question!r} → " + "; ".join(f"{p.title} (chunk {p.chunk_id})" for p in passages))
    return {**summary, "search": {"query": question, "results": [p.__dict__ for p in passages]}}


def propose_step(as_json: bool) -> dict:
    """A proposal for every sample client, written by the offline composer (the batch flow)."""
    from .proposals import report_batch

    summary = run_flow("generate_proposal", "generate_proposals", offline=True)
    if not as_json:
        report_batch(summary)
    return summary


def deliver_step(as_json: bool, report: dict | None = None) -> dict:
    """Approve the proposals the propose step wrote (or found) — those only, never other proposals in the
    database — through the status machine (draft → in_review → approved) and deliver them with the local
    exporters: .docx/.html under exports/, an .eml each in the outbox. `report`: the demo's report so far."""
    from ..database import connect
    from ..proposals import status
    from .deliver import report_batch_delivery

    ids = [p["proposal_id"] for p in ((report or {}).get("propose") or {}).get("proposals") or []]
    with connect(autocommit=True) as conn:
        rows = conn.execute("SELECT id, status FROM proposals WHERE id = ANY(%s::uuid[]) AND content IS NOT NULL "
                            "AND status IN ('draft', 'in_review', 'approved', 'sent') ORDER BY created_at, id",
                            (ids,)).fetchall()
        for proposal_id, current in rows:
            for step in {"draft": ("in_review", "approved"), "in_review": ("approved",)}.get(current, ()):
                status.transition(conn, str(proposal_id), step, actor="demo", note="approved by the demo")
    summary = run_flow("deliver_proposal", "deliver_proposals", proposal_ids=[str(r[0]) for r in rows],
                       target="local")
    if not as_json:
        report_batch_delivery(summary)
    return summary


# (name, step) in pipeline order
# (a step with a second parameter also gets the report of the steps before it)
STEPS: list[tuple[str, Callable[..., dict]]] = [
    ("ingest", ingest_step),
    ("enrich", enrich_step),
    ("knowledge", knowledge_step),
    ("propose", propose_step),
    ("deliver", deliver_step),
]


def demo(as_json: bool = JsonOption) -> None:
    """Run the pipeline on the sample data shipped with the package."""
    report: dict = {}
    with reported_errors(as_json):
        from ..database import database_url, redact

        err.print(f"database: {redact(database_url())}")
        for name, step in STEPS:
            err.print(f"[bold]== {name} ==[/]")
            takes_report = len(inspect.signature(step).parameters) > 1
            report[name] = step(as_json, report) if takes_report else step(as_json)
    if as_json:
        emit_json(report)
