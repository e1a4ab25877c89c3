"""approved proposal ─ deliver-proposal ▶ Google Doc in the client's Drive folder + Gmail draft
                                          (or a local .docx/.html and an .eml outbox)"""

from __future__ import annotations

from prefect import flow

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
