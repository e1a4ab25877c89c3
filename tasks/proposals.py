"""Tasks of proposal generation. One task wraps one run of the LangGraph workflow (the graph drafts
the sections in parallel itself); Prefect retries it on infrastructure failure, and a retry
resumes the run from its PostgreSQL checkpoints."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from proposalflow.database import connect
from proposalflow.proposals import service, store
from proposalflow.proposals.composer import OfflineComposer
from proposalflow.settings import get_settings

from .events import emit
from .retry import retry_on_transient


@task(name="write-proposal", retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, task_run_name="write-proposal-{client_id}")  # model calls have their own timeouts
def write_proposal(client_id: str | None, brief: str | None = None, template: str | None = None,
                   proposal_id: str | None = None, new: bool = False, offline: bool = False) -> dict:
    """Plan → retrieve and draft the sections in parallel → check → assemble → save, as one graph run.
    `offline`: the offline composer even when a model is configured (the demo)."""
    logger = get_run_logger()
    settings = get_settings()
    writer = OfflineComposer() if offline else None
    with connect(settings, autocommit=True) as conn:
        result = service.generate(conn, client_id, brief, template, proposal_id=proposal_id, new=new,
                                  settings=settings, writer=writer,
                                  flow_run_id=str(flow_run.id) if flow_run.id else None, on_progress=logger.info)
    if result.offline:
        logger.info("written by the offline composer — no language model wrote this")
    for warning in result.warnings:
        logger.warning("check: %s", warning)
    if not result.reused:
        emit("proposalflow.proposal.generated", "proposal", result.proposal_id, name=result.title,
             payload={"version": result.version, "model": result.model, "offline": result.offline,
                      "sections": result.sections, "citations": result.citations, "resumed": result.resumed,
                      "warnings": len(result.warnings), "token_usage": result.token_usage},
             related=[{"prefect.resource.id": f"proposalflow.client.{client_id or 'unknown'}",
                       "prefect.resource.role": "client"}])
    return result.as_dict()


@task(name="list-clients", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def list_clients() -> list[str]:
    """Every client's id (a batch given no list covers them all)."""
    with connect(autocommit=True) as conn:
        return store.client_ids(conn)
