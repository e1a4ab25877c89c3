"""Tasks of delivery. Each is one call into proposalflow.delivery.service; every side effect inside
is checked against its idempotency key first, so Prefect's retries (and re-runs of the whole flow)
never make a second Doc, draft or .eml. The step records in PostgreSQL are the source of truth for
"already done" — not Prefect's result persistence, which a crash between the side effect and the
persisted result would miss, and which another worker or the API process cannot see."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from proposalflow.database import connect
from proposalflow.delivery import service
from proposalflow.delivery.targets import DeliveryJob, DeliveryTarget
from proposalflow.settings import get_settings

from .events import emit
from .retry import retry_on_transient

EVENT = "proposalflow.proposal.delivered"
# Google's 429/5xx are retried inside the core, honouring Retry-After; these retries come on top,
# for a service that stayed unavailable (IntegrationFailed) or a lost database connection.
STEP = dict(retries=3, retry_delay_seconds=[10, 60, 300], retry_condition_fn=retry_on_transient,
            cache_policy=NO_CACHE, timeout_seconds=900)


@contextmanager
def _target(job: DeliveryJob) -> Iterator[tuple[object, DeliveryTarget]]:
    settings = get_settings()
    with connect(settings, autocommit=True) as conn:
        yield conn, service.make_target(conn, settings, job.target)


@task(name="plan-delivery", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def plan_delivery(proposal_id: str, send: bool = False, target: str | None = None) -> DeliveryJob:
    """The approval gate and everything else checkable before a side effect."""
    settings = get_settings()
    with connect(settings, autocommit=True) as conn:
        name = service.target_name(conn, settings, target)
        service.make_target(conn, settings, name)  # refuse missing or unusable credentials before any record
        job = service.plan_delivery(conn, proposal_id, target=name, send=send, settings=settings,
                                    flow_run_id=str(flow_run.id) if flow_run.id else None)
    logger = get_run_logger()
    if job.already_delivered:
        logger.info("proposal %s v%d was already delivered (%s): nothing to do", job.proposal_id, job.version, name)
    else:
        logger.info("delivering proposal %s v%d to %s (%s) via %s%s", job.proposal_id, job.version, job.client_name,
                    job.recipient, name, ", and sending" if send else "")
    return job


@task(name="ensure-client-folder", **STEP)
def ensure_client_folder(job: DeliveryJob) -> dict:
    with _target(job) as (conn, target):
        folder = service.ensure_client_folder(conn, target, job)
    get_run_logger().info("client folder %s%s", folder.get("folder_id") or folder.get("path"),
                          " (created)" if folder["made"] else "")
    return folder


@task(name="create-document", **STEP)
def create_document(job: DeliveryJob, folder: dict) -> dict:
    with _target(job) as (conn, target):
        document = service.create_document(conn, target, job, folder)
    get_run_logger().info("document %s%s", document["link"], "" if document["made"] else " (made earlier)")
    return document


@task(name="share-document", **STEP)
def share_document(job: DeliveryJob, document: dict) -> dict | None:
    with _target(job) as (conn, target):
        return service.share_document(conn, target, job, document)


@task(name="create-email", **STEP)
def create_email(job: DeliveryJob, document: dict) -> dict:
    """A Gmail draft or an .eml in the outbox — never a send."""
    with _target(job) as (conn, target):
        message = service.create_email(conn, target, job, document)
    get_run_logger().info("email to %s: %s%s", message["to"], message.get("eml") or f"draft {message.get('draft_id')}",
                          "" if message["made"] else " (made earlier)")
    return message


@task(name="send-email", **STEP)
def send_email(job: DeliveryJob, message: dict) -> dict | None:
    with _target(job) as (conn, target):
        return service.send_email(conn, target, job, message)


@task(name="finish-delivery", retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def finish_delivery(job: DeliveryJob, folder: dict, document: dict, message: dict, sent: dict | None) -> dict:
    """approved → sent, doc_link and metadata, in one transaction; then the event."""
    with connect(autocommit=True) as conn:
        report = service.finish_delivery(conn, job, folder=folder, document=document, message=message, sent=sent)
    emit(EVENT, "proposal", job.proposal_id, name=job.title,
         payload={"version": job.version, "target": job.target, "mail_state": report["mail_state"],
                  "doc_link": report["doc_link"], "recipient": job.recipient, "made": report["made"],
                  "files": report["files"]},
         related=[{"prefect.resource.id": f"proposalflow.client.{job.client_id}", "prefect.resource.role": "client"}])
    get_run_logger().info("proposal %s v%d delivered (%s, email %s)", job.proposal_id, job.version, job.target,
                          report["mail_state"])
    return report
