"""approved proposal ─ deliver-proposal ▶ Google Doc in the client's Drive folder + Gmail draft
                                          (or a local .docx/.html and an .eml outbox)"""

from __future__ import annotations

from prefect import flow, get_run_logger

from proposalflow.delivery.service import already_delivered_report
from tasks.delivery import (create_document, create_email, ensure_client_folder, finish_delivery, plan_delivery,
                            send_email, share_document)


@flow(name="deliver-proposal")
def deliver_proposal(proposal_id: str, send: bool = False, target: str | None = None) -> dict:
    """Deliver an approved proposal's current version, exactly once.

    `target`: "google" or "local" (default: PROPOSALFLOW_DELIVERY, else Google when it has
    credentials, else local). The email stays a draft unless `send` is given AND
    PROPOSALFLOW_ALLOW_SEND is true. The same version again: "already delivered", nothing new made.
    """
    job = plan_delivery(proposal_id, send, target)
    if job.already_delivered:
        return already_delivered_report(job)
    folder = ensure_client_folder(job)
    document = create_document(job, folder)
    share_document(job, document)
    message = create_email(job, document)
    sent = send_email(job, message) if job.send else None
    return finish_delivery(job, folder, document, message, sent)


@flow(name="deliver-proposals")
def deliver_proposals(proposal_ids: list[str], send: bool = False, target: str | None = None) -> dict:
    """Deliver several approved proposals, one deliver-proposal run each, in order. One proposal's
    failure is reported and the others go on."""
    logger = get_run_logger()
    delivered, failures = [], []
    for proposal_id in proposal_ids:
        state = deliver_proposal(proposal_id, send, target, return_state=True)
        try:
            delivered.append(state.result())
        except Exception as exc:  # noqa: BLE001 - one proposal's failure is reported, the batch goes on
            logger.error("proposal %s: %s: %s", proposal_id, type(exc).__name__, exc)
            failures.append({"proposal_id": proposal_id, "error": f"{type(exc).__name__}: {exc}"})
    return {"delivered": sum(not d["already_delivered"] for d in delivered),
            "already_delivered": sum(d["already_delivered"] for d in delivered), "failed": len(failures),
            "deliveries": delivered, "failures": failures}
