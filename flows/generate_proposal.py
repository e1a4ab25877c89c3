"""client + brief ─ generate-proposal ▶ proposals (LangGraph: plan → retrieve → draft sections in parallel → check → save)"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from proposalflow.settings import get_settings
from tasks.proposals import list_clients, write_proposal


@flow(name="generate-proposal")
def generate_proposal(client_id: str, brief: str | None = None, template: str | None = None,
                      proposal_id: str | None = None, new: bool = False, offline: bool = False) -> dict:
    """Write a grounded, cited proposal for one client (templates: standard, short, rfp).

    `brief` is optional free text (a salesperson's notes, an RFP excerpt). With `proposal_id` the
    proposal gets a new version instead. The same request again returns the proposal already
    written unless `new`; an interrupted one resumes where it stopped. The flow run's id is stored
    on the proposal. `offline` uses the offline composer even when a model is configured.
    """
    return write_proposal(client_id, brief, template, proposal_id, new, offline)


@flow(name="generate-proposals")
def generate_proposals(client_ids: list[str] | None = None, brief: str | None = None, template: str | None = None,
                       concurrency: int | None = None, new: bool = False, offline: bool = False) -> dict:
    """Proposals for many clients (default: every client), at most `concurrency` at once
    (PROPOSALFLOW_PROPOSAL_BATCH_CONCURRENCY). One client's failure does not stop the others."""
    limit = concurrency or get_settings().proposal_batch_concurrency
    if client_ids is None:
        client_ids = list_clients()
    logger = get_run_logger()
    results, failed, pending = [], [], []
    queue = list(client_ids)
    while queue or pending:
        while queue and len(pending) < limit:
            client_id = queue.pop(0)
            pending.append((client_id, write_proposal.submit(client_id, brief, template, None, new, offline)))
        done = next(as_completed([future for _, future in pending]))
        client_id, future = next(item for item in pending if item[1] is done)
        pending.remove((client_id, future))
        try:
            results.append(future.result())
        except Exception as exc:  # noqa: BLE001 - one client's failure is reported, the batch goes on
            logger.error("client %s: %s: %s", client_id, type(exc).__name__, exc)
            failed.append({"client_id": client_id, "error": f"{type(exc).__name__}: {exc}"})
    return {"generated": sum(not r["reused"] for r in results), "reused": sum(r["reused"] for r in results),
            "failed": len(failed), "proposals": results, "failures": failed}

