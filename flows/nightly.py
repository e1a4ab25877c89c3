"""The night's upkeep, as subflows:

PROPOSALFLOW_CLIENTS_SOURCE ─ ingest-clients ─▶ clients
stale clients ────────────── enrich-clients ─▶ clients.enriched_data
PROPOSALFLOW_KNOWLEDGE_DIR ─ embed-knowledge ▶ knowledge_base + knowledge_chunks (changed documents only)

Each step is one line below. A step that fails does not stop the next ones (enriching the
clients already known is worth doing when tonight's file is broken); the run then fails at the
end, naming the failed steps. A step with nothing configured is skipped, with the reason.
"""

from __future__ import annotations

from typing import Any, Callable

from prefect import flow, get_run_logger

from flows.embed_knowledge import embed_knowledge
from flows.enrich_clients import enrich_clients
from flows.ingest_clients import ingest_clients
from proposalflow.settings import get_settings


@flow(name="nightly")
def nightly(source: str | None = None, stale_days: int = 30) -> dict:
    """Ingest clients from `source` (default PROPOSALFLOW_CLIENTS_SOURCE) → enrich the clients never
    enriched, last failed or enriched more than `stale_days` ago → embed changed knowledge."""
    settings = get_settings()
    source = source or settings.clients_source
    steps = Steps()
    if source:
        steps.run("ingest", ingest_clients, source=source)
    else:
        steps.skip("ingest", "no client source: set PROPOSALFLOW_CLIENTS_SOURCE or pass `source`")
    steps.run("enrich", enrich_clients, stale_days=stale_days)  # never enriched, last failed, or older than that
    if settings.kb_folder:
        steps.run("knowledge", embed_knowledge)  # the flow's default: PROPOSALFLOW_KNOWLEDGE_DIR, changed files only
    else:
        steps.skip("knowledge", "no knowledge folder: set PROPOSALFLOW_KNOWLEDGE_DIR")
    return steps.report()


class Steps:
    """Runs subflows one after the other, keeping each one's result, skip reason or failure."""

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.failed: dict[str, str] = {}

    def run(self, name: str, subflow: Callable[..., Any], **parameters: Any) -> None:
        state = subflow(**parameters, return_state=True)
        if state.is_completed():
            self.results[name] = state.result()
            return
        try:
            state.result(raise_on_failure=True)
            message = f"ended {state.name}"
        except Exception as exc:  # noqa: BLE001 - reported at the end, after the other steps ran
            message = f"{type(exc).__name__}: {exc}"
        get_run_logger().error("step %s failed: %s", name, message)
        self.results[name] = {"failed": message}
        self.failed[name] = message

    def skip(self, name: str, reason: str) -> None:
        get_run_logger().info("step %s skipped: %s", name, reason)
        self.results[name] = {"skipped": reason}

    def report(self) -> dict:
        if self.failed:
            raise StepsFailed("; ".join(f"{name}: {message}" for name, message in self.failed.items()))
        return self.results


class StepsFailed(Exception):
    """Some of the night's steps failed (each one is named with its error)."""
