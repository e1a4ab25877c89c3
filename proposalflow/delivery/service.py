"""deliver-proposal's core: the approval gate, the steps, exactly once.

    plan_delivery ─▶ ensure_client_folder ─▶ create_document ─▶ share_document ─▶ create_email
                  ─▶ send_email (only with send) ─▶ finish_delivery (approved → sent, doc_link, metadata)

`deliver` runs them in order; the Prefect flow runs each as a task. Every side effect goes through
`records.once` with the key (proposal, version, target, step), so a re-run after a crash makes only
what is missing, and a second delivery of the same version makes nothing ("already delivered").

Status: only an `approved` proposal is delivered; success moves it to `sent` through the status
machine's delivery hook (`mark_sent`). `sent` means "delivered": the document exists and the email
is in the client's hands or ready to go — `deliveries.mail_state` (and the report) says which:
`draft` (a Gmail draft / an .eml in the outbox) or `sent`. A later `deliver --send` of a delivery
whose email is still a draft sends that draft and makes nothing else.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from email.utils import parseaddr

import psycopg
from psycopg.types.json import Jsonb

from ..errors import ConfigurationError, IllegalTransition, NotFound, ValidationFailed
from ..proposals import status as proposal_status
from ..proposals.schema import ProposalContent
from ..settings import Settings, get_settings
from . import records
from .mail import FIELDS, build_message, load_template, message_id_for, render_email, summary_of
from .targets import DeliveryJob, DeliveryTarget, FolderMissing

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


# ── the target ──────────────────────────────────────────────────────────────────────────────

def target_name(conn: psycopg.Connection, settings: Settings, requested: str | None = None) -> str:
    """PROPOSALFLOW_DELIVERY (or the caller's choice); else Google when it has credentials
    (a service-account key, or a stored consent), else the local exporters."""
    name = requested or settings.delivery
    if name:
        if name not in ("google", "local"):
            raise ValidationFailed(f"delivery target {name!r}: one of google, local",
                                   [{"field": "target", "message": "unknown target"}])
        return name
    if settings.google_application_credentials:
        return "google"
    from .google_credentials import has_user_credentials

    return "google" if has_user_credentials(conn) else "local"


def make_target(conn: psycopg.Connection, settings: Settings, name: str) -> DeliveryTarget:
    if name == "local":
        from .local import LocalExporter

        smtp = settings.smtp_url.get_secret_value() if settings.smtp_url else None
        return LocalExporter(settings.home_dir, smtp_url=smtp)
    from .google_credentials import authorized_http, workspace_credentials
    from .workspace import GoogleWorkspace

    credentials, description = workspace_credentials(conn, settings)
    return GoogleWorkspace(authorized_http(credentials, timeout=settings.google_timeout_seconds),
                           parent_folder=settings.google_drive_parent, attempts=settings.google_attempts,
                           requests_per_second=settings.google_requests_per_second,
                           credentials_description=description, api_endpoint=settings.google_api_endpoint)


# ── plan: the gate ─────────────────────────────────────────────────────────────────────────

def plan_delivery(conn: psycopg.Connection, proposal_id: str, *, target: str, send: bool = False,
                  settings: Settings | None = None, flow_run_id: str | None = None) -> DeliveryJob:
    """Check everything before any side effect: the proposal is approved (or this very delivery is
    being resumed), has content, its client has a contact email, sending is allowed if asked for."""
    records.require_autocommit(conn)
    settings = settings or get_settings()
    pid = _uuid(proposal_id)
    row = conn.execute(
        """SELECT p.status, p.version, p.content, c.id, c.name, c.contact_info, c.drive_folder_id
             FROM proposals p JOIN clients c ON c.id = p.client_id WHERE p.id = %s""", (pid,)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    state, version, content, client_id, client_name, contact, folder_id = row
    if content is None or version < 1:
        raise IllegalTransition(f"proposal {pid} has no content yet (status '{state}'): nothing to deliver",
                                state, proposal_status.ProposalStatus.SENT.value)
    existing = records.find_delivery(conn, pid, version, target)
    if existing and existing["status"] == "completed" and (not send or existing["mail_state"] == "sent"):
        return _job(existing["id"], pid, version, target, send, client_id, client_name, contact, folder_id, content,
                    already_delivered=True, previous={**(existing["result"] or {}), "mail_state": existing["mail_state"]})
    if send and not settings.allow_send:
        raise ConfigurationError("sending is turned off: `--send` needs PROPOSALFLOW_ALLOW_SEND=true "
                                 "(without --send the email is left as a draft for a person to send)")
    if send and target == "local" and not settings.smtp_url:
        raise ConfigurationError("`--send` with the local exporters needs SMTP_URL (smtp://user:pass@host:587); "
                                 "without it the email stays in the outbox as an .eml")
    completed_draft = bool(existing and existing["status"] == "completed")  # only the send is left to do
    if completed_draft and state != proposal_status.ProposalStatus.SENT:
        raise IllegalTransition(f"proposal {pid} is '{state}': the email of its delivery (version {version}, "
                                f"'{target}') is not sent any more", state, proposal_status.ProposalStatus.SENT.value)
    if not completed_draft and state != proposal_status.ProposalStatus.APPROVED:
        hint = {"draft": f" (approve it first: proposalflow proposal status {pid} approved)",
                "in_review": f" (approve it first: proposalflow proposal status {pid} approved)",
                "sent": _sent_hint(conn, pid, version, target)}.get(state, "")
        raise IllegalTransition(f"proposal {pid} is '{state}': only approved proposals are delivered{hint}",
                                state, proposal_status.ProposalStatus.SENT.value)
    recipient = (contact or {}).get("email")
    if not recipient or not _EMAIL.match(str(recipient)):
        raise ValidationFailed(f"client '{client_name}' ({client_id}) has no valid contact email "
                               f"(contact_info.email = {recipient!r}): the proposal's email needs a recipient",
                               [{"field": "contact_info.email", "message": "missing or invalid"}])
    if not completed_draft:  # a broken PROPOSALFLOW_EMAIL_TEMPLATE is refused before the document is made
        render_email(load_template(settings.email_template), **{name: "" for name in FIELDS})
    delivery_id, _, created = records.open_delivery(conn, pid, version, target, flow_run_id=flow_run_id)
    if not created and not completed_draft:  # a completed draft stays completed if sending it fails
        records.restart_delivery(conn, delivery_id, flow_run_id)
    return _job(delivery_id, pid, version, target, send, client_id, client_name, contact, folder_id, content)


def _sent_hint(conn: psycopg.Connection, pid: str, version: int, target: str) -> str:
    """What the deliveries table says about a `sent` proposal that has no completed delivery of its current
    version to `target` — the version and target that were in fact delivered."""
    row = conn.execute("""SELECT version, target, mail_state FROM deliveries WHERE proposal_id = %s AND status = 'completed'
                           ORDER BY version = %s DESC, completed_at DESC LIMIT 1""", (pid, version)).fetchone()
    if row is None:
        return f" — no completed delivery of it is recorded (current version {version})"
    delivered, other, mail_state = row
    if delivered == version:
        return f" — version {version} was already delivered to '{other}' (email {mail_state}), not to '{target}'"
    return (f" — version {delivered} was delivered to '{other}' (email {mail_state}); the current version {version} "
            "never was")


def _job(delivery_id, pid, version, target, send, client_id, client_name, contact, folder_id, content,
         **extra) -> DeliveryJob:
    contact = contact or {}
    return DeliveryJob(delivery_id=str(delivery_id), proposal_id=pid, version=version, target=target, send=send,
                       client_id=str(client_id), client_name=client_name, recipient=str(contact.get("email") or ""),
                       contact_name=contact.get("contact_name"), drive_folder_id=folder_id,
                       content=ProposalContent.model_validate(content), **extra)


# ── steps ──────────────────────────────────────────────────────────────────────────────────

def ensure_client_folder(conn: psycopg.Connection, target: DeliveryTarget, job: DeliveryJob) -> dict:
    """The client's folder: remembered on the client (Google), else found by its tag, else created.
    Two deliveries for one client at once take turns (an advisory lock on the client)."""
    records.require_autocommit(conn)
    try:
        return _client_folder(conn, target, job)
    except Exception as exc:
        records.fail_delivery(conn, job.delivery_id, f"folder: {type(exc).__name__}: {exc}")
        raise


def _client_folder(conn: psycopg.Connection, target: DeliveryTarget, job: DeliveryJob) -> dict:
    if target.remembers_folder:
        remembered = conn.execute("SELECT drive_folder_id FROM clients WHERE id = %s", (job.client_id,)).fetchone()
        if remembered and remembered[0]:
            return {"folder_id": remembered[0], "made": False}
    with records.key_lock(conn, f"client-folder:{target.name}:{job.client_id}"):
        if target.remembers_folder:
            remembered = conn.execute("SELECT drive_folder_id FROM clients WHERE id = %s", (job.client_id,)).fetchone()
            if remembered and remembered[0]:
                return {"folder_id": remembered[0], "made": False}
        folder = target.find_client_folder(job)
        made = folder is None
        if made:
            folder = target.create_client_folder(job)
        if target.remembers_folder:
            conn.execute("UPDATE clients SET drive_folder_id = %s WHERE id = %s", (folder["folder_id"], job.client_id))
        return {**folder, "made": made}


def create_document(conn: psycopg.Connection, target: DeliveryTarget, job: DeliveryJob, folder: dict) -> dict:
    key = job.key("document")

    def make() -> dict:
        parent = _clean(folder)
        try:
            document = target.create_document(job, parent, key)
        except FolderMissing:  # the remembered folder was deleted or trashed: forget it, find or make a new one
            conn.execute("UPDATE clients SET drive_folder_id = NULL WHERE id = %s AND drive_folder_id = %s",
                         (job.client_id, folder.get("folder_id")))
            parent = _clean(_client_folder(conn, target, job))
            document = target.create_document(job, parent, key)
        return {**document, "folder_id": parent["folder_id"]} if parent.get("folder_id") else document

    outcome = _once(conn, job, "document", make, lambda: target.find_document(job, key))
    return {**outcome.result, "made": outcome.made}


def share_document(conn: psycopg.Connection, target: DeliveryTarget, job: DeliveryJob, document: dict,
                   settings: Settings | None = None) -> dict | None:
    """Share the Google Doc with PROPOSALFLOW_GOOGLE_SHARE_WITH (nothing to do without addresses)."""
    settings = settings or get_settings()
    addresses = [a.strip() for a in settings.google_share_with.split(",") if a.strip()]
    if target.name != "google" or not addresses:
        return None
    outcome = _once(conn, job, "share",
                    lambda: target.share_document(job, _clean(document), addresses, settings.google_share_role))
    return {**outcome.result, "made": outcome.made}


def email_for(job: DeliveryJob, document: dict, settings: Settings):
    """The RFC 822 message of this delivery: recipient, subject and body from the template, the link."""
    text = render_email(
        load_template(settings.email_template),
        client_name=job.client_name, contact_name=job.contact_name or "", title=job.title,
        greeting_name=job.contact_name or f"{job.client_name} team", link=document.get("email_link") or document["link"],
        summary=summary_of(job.content.executive_summary), version=str(job.version),
        sender=(parseaddr(settings.mail_from)[0] or settings.mail_from) if settings.mail_from else "Your proposal team")
    return build_message(to=job.recipient, subject=text.subject, body=text.body, sender=settings.mail_from,
                         message_id=message_id_for(job.key("message")), proposal_id=job.proposal_id,
                         version=job.version)


def create_email(conn: psycopg.Connection, target: DeliveryTarget, job: DeliveryJob, document: dict,
                 settings: Settings | None = None) -> dict:
    """A draft (Gmail) or an .eml in the outbox (local) — never a send."""
    settings = settings or get_settings()
    key = job.key("message")
    message = email_for(job, document, settings)
    outcome = _once(conn, job, "message", lambda: target.create_message(job, message, _clean(document)),
                    lambda: target.find_message(job, key, message["Message-ID"]))
    return {**outcome.result, "subject": message["Subject"], "to": job.recipient, "made": outcome.made}


def send_email(conn: psycopg.Connection, target: DeliveryTarget, job: DeliveryJob, message: dict) -> dict | None:
    if not job.send:
        return None
    outcome = _once(conn, job, "send", lambda: target.send_message(job, _clean(message)),
                    lambda: target.find_sent(job, _clean(message)))
    return {**outcome.result, "made": outcome.made}


def finish_delivery(conn: psycopg.Connection, job: DeliveryJob, *, folder: dict, document: dict, message: dict,
                    sent: dict | None) -> dict:
    """approved → sent (the status machine's delivery hook), doc_link, metadata, the delivery completed —
    in one transaction. Returns the delivery's report."""
    records.require_autocommit(conn)
    already_sent = records.step_state(conn, job.delivery_id, "send")
    mail_state = "sent" if sent or (already_sent and already_sent[0] == "done") else "draft"
    made = [name for name, part in (("folder", folder), ("document", document), ("message", message),
                                    ("send", sent)) if part and part.get("made")]
    report = {
        "proposal_id": job.proposal_id, "version": job.version, "target": job.target, "status": "sent",
        "mail_state": mail_state, "doc_link": document["link"], "recipient": job.recipient,
        "subject": message.get("subject"), "client": {"id": job.client_id, "name": job.client_name},
        "folder": _clean(folder), "document": _clean(document), "message": _clean(message),
        "sent": _clean(sent) if sent else None, "files": _files(job.target, document, message),
        "delivered_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    metadata = {"target": job.target, "version": job.version, "mail_state": mail_state,
                "delivered_at": report["delivered_at"], "delivery_id": job.delivery_id}
    if job.target == "google":
        metadata.update(drive_folder_id=document.get("folder_id") or folder.get("folder_id"), drive_file_id=document.get("id"),
                        gmail_draft_id=message.get("draft_id"), gmail_message_id=(sent or {}).get("gmail_message_id")
                        or message.get("gmail_message_id"), message_id=message.get("message_id"))
    else:
        metadata.update(files=report["files"], message_id=message.get("message_id"))
    try:
        with conn.transaction():
            _require_still_deliverable(conn, job)
            _record_finished(conn, job, document, mail_state, metadata, report)
    except (IllegalTransition, NotFound) as exc:  # rolled back: the proposal's status is untouched
        records.fail_delivery(conn, job.delivery_id, f"finish: {type(exc).__name__}: {exc}")
        raise
    return {**report, "already_delivered": False, "made": made}


def _require_still_deliverable(conn: psycopg.Connection, job: DeliveryJob) -> None:
    """Under the proposal's row lock: the delivered version is still the current one, and the proposal
    is still `approved` (or `sent`, when this delivery was completed earlier and only its send was left).
    A revision saved (and perhaps re-approved) while the delivery ran refuses it: what was delivered
    is not what the proposal now says."""
    row = conn.execute("SELECT status, version FROM proposals WHERE id = %s FOR UPDATE",
                       (job.proposal_id,)).fetchone()
    if row is None:
        raise NotFound(f"proposal {job.proposal_id} does not exist any more: its delivery is not recorded")
    state, current = row
    if current != job.version:
        raise IllegalTransition(
            f"proposal {job.proposal_id}: version {job.version} was delivered ({job.target}), but version {current} "
            f"was saved meanwhile (status '{state}'): the proposal is not marked sent, and what was made for version "
            f"{job.version} is left as it is. Approve version {current} and deliver again to deliver what it now says",
            state, proposal_status.ProposalStatus.SENT.value)
    completed = conn.execute("SELECT status FROM deliveries WHERE id = %s FOR UPDATE",
                             (job.delivery_id,)).fetchone()
    follow_up = bool(completed and completed[0] == "completed")  # only the send of a finished delivery
    if state == proposal_status.ProposalStatus.APPROVED or (follow_up and state == proposal_status.ProposalStatus.SENT):
        return
    raise IllegalTransition(
        f"proposal {job.proposal_id} became '{state}' while version {job.version} was being delivered "
        f"({job.target}): the proposal is not marked sent", state, proposal_status.ProposalStatus.SENT.value)


def _record_finished(conn: psycopg.Connection, job: DeliveryJob, document: dict, mail_state: str, metadata: dict,
                     report: dict) -> None:
    proposal_status.mark_sent(conn, job.proposal_id, doc_link=document["link"], version=job.version,
                              note=f"delivered ({job.target}, email {mail_state})")
    conn.execute("UPDATE proposals SET metadata = metadata || jsonb_build_object('delivery', %s::jsonb) "
                 "WHERE id = %s", (Jsonb(metadata), job.proposal_id))
    conn.execute("""UPDATE deliveries SET status = 'completed', mail_state = %s, doc_link = %s, result = %s,
                           error = NULL, completed_at = now() WHERE id = %s""",
                 (mail_state, document["link"], Jsonb(report), job.delivery_id))


def already_delivered_report(job: DeliveryJob) -> dict:
    return {**job.previous, "already_delivered": True, "made": []}


def deliver(conn: psycopg.Connection, proposal_id: str, *, send: bool = False, target: DeliveryTarget | str | None = None,
            settings: Settings | None = None, flow_run_id: str | None = None) -> dict:
    """The whole delivery in this process (the flow runs the same steps as tasks)."""
    settings = settings or get_settings()
    if target is None or isinstance(target, str):  # credentials are checked before anything is recorded
        target = make_target(conn, settings, target_name(conn, settings, target))
    job = plan_delivery(conn, proposal_id, target=target.name, send=send, settings=settings, flow_run_id=flow_run_id)
    if job.already_delivered:
        return already_delivered_report(job)
    try:
        folder = ensure_client_folder(conn, target, job)
        document = create_document(conn, target, job, folder)
        share_document(conn, target, job, document, settings)
        message = create_email(conn, target, job, document, settings)
        sent = send_email(conn, target, job, message)
        return finish_delivery(conn, job, folder=folder, document=document, message=message, sent=sent)
    except Exception as exc:
        records.fail_delivery(conn, job.delivery_id, f"{type(exc).__name__}: {exc}")
        raise


def delivery_status(conn: psycopg.Connection, proposal_id: str) -> list[dict]:
    """Every delivery of a proposal, oldest first, with its steps (for `proposal show`, the API): where the
    document is (`doc_link`, and for the local target its `files`), whether the email is a `draft` (a Gmail
    draft, an .eml in the outbox) or was `sent` (`mail_state`; None until the email step is done)."""
    rows = conn.execute("""SELECT id, version, target, status, mail_state, doc_link, attempts, error, started_at,
                                  completed_at FROM deliveries WHERE proposal_id = %s ORDER BY started_at""",
                        (_uuid(proposal_id),)).fetchall()
    keys = ("id", "version", "target", "status", "mail_state", "doc_link", "attempts", "error", "started_at",
            "completed_at")
    deliveries = []
    for r in rows:
        delivery = {**dict(zip(keys, r)), "id": str(r[0])}
        steps = {name: {**step, "completed_at": _iso(step["completed_at"])}
                 for name, step in records.steps_of(conn, delivery["id"]).items()}
        done = {name: step["result"] or {} for name, step in steps.items() if step["state"] == "done"}
        document, message = done.get("document", {}), done.get("message", {})
        if delivery["status"] != "completed":  # what exists so far of an unfinished delivery
            delivery["doc_link"] = delivery["doc_link"] or document.get("link")
            delivery["mail_state"] = "sent" if "send" in done else "draft" if message else None
        delivery.update(started_at=_iso(r[8]), completed_at=_iso(r[9]), files=_files(r[2], document, message),
                        document_id=document.get("id") if r[2] == "google" else None,
                        draft_id=message.get("draft_id"), steps=steps)
        deliveries.append(delivery)
    return deliveries


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


# ── helpers ────────────────────────────────────────────────────────────────────────────────

def _once(conn, job: DeliveryJob, step: str, make, find=None) -> records.StepOutcome:
    try:
        return records.once(conn, job.delivery_id, step, job.key(step), make, find)
    except Exception as exc:
        records.fail_delivery(conn, job.delivery_id, f"{step}: {type(exc).__name__}: {exc}")
        raise


def _clean(part: dict | None) -> dict:
    return {k: v for k, v in (part or {}).items() if k != "made"}


def _files(target: str, document: dict, message: dict) -> list[str]:
    if target != "local":
        return []
    return [p for p in (document.get("docx"), document.get("html"), message.get("eml")) if p]


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"proposal {value!r} does not exist (not a proposal id)") from None
