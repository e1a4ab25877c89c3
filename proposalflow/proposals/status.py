"""The proposal status machine.

    generating ──▶ draft ──▶ in_review ──▶ approved ──▶ sent ──▶ archived
        │  ▲         ▲  │        │  │          │
        ▼  │         │  └────────┼──┼──────────┴──▶ archived
      failed         └─ rejected ◀┘  └─▶ draft (sent back for changes)

People move a proposal with `transition` (CLI `proposal status`, API). Three targets belong to the
system and are refused there: `generating` and `failed` (the generation run sets them) and `sent`,
which only delivery sets, through `mark_sent` — the hook for deliver-proposal. A new version
(regeneration or revision) moves the proposal back to `draft` through `content_changed`: approval
was given to the old words.

Every change is one row of `proposal_status_history`, written in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import psycopg

from ..errors import IllegalTransition, NotFound, ValidationFailed


class ProposalStatus(StrEnum):
    GENERATING = "generating"
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    SENT = "sent"
    REJECTED = "rejected"
    FAILED = "failed"
    ARCHIVED = "archived"


S = ProposalStatus

# Every legal move, system moves included.
ALLOWED: dict[ProposalStatus, frozenset[ProposalStatus]] = {
    S.GENERATING: frozenset({S.DRAFT, S.FAILED}),
    S.FAILED: frozenset({S.GENERATING, S.ARCHIVED}),
    S.DRAFT: frozenset({S.IN_REVIEW, S.ARCHIVED}),
    S.IN_REVIEW: frozenset({S.APPROVED, S.REJECTED, S.DRAFT}),
    S.APPROVED: frozenset({S.SENT, S.IN_REVIEW, S.DRAFT, S.ARCHIVED}),
    S.REJECTED: frozenset({S.DRAFT, S.ARCHIVED}),
    S.SENT: frozenset({S.ARCHIVED}),
    S.ARCHIVED: frozenset(),
}

# Targets only the system sets: refused by `transition`.
SYSTEM_ONLY: dict[ProposalStatus, str] = {
    S.GENERATING: "a proposal is 'generating' only while its generation runs",
    S.FAILED: "'failed' is set by a generation run that failed",
    S.SENT: "only delivery moves a proposal to 'sent' (deliver-proposal, proposalflow.proposals.status.mark_sent)",
}

# A new version (regeneration, revision) may be saved in these states; it leaves the proposal in draft.
CONTENT_EDITABLE = frozenset({S.GENERATING, S.FAILED, S.DRAFT, S.IN_REVIEW, S.APPROVED, S.REJECTED})


@dataclass(frozen=True)
class StatusChange:
    proposal_id: str
    from_status: str
    to_status: str

    def as_dict(self) -> dict:
        return {"proposal_id": self.proposal_id, "from": self.from_status, "to": self.to_status}


def parse_status(value: str) -> ProposalStatus:
    try:
        return ProposalStatus(value.strip().lower().replace("-", "_").replace(" ", "_"))
    except ValueError:
        raise ValidationFailed(
            f"{value!r} is not a proposal status; one of: {', '.join(s.value for s in ProposalStatus)}",
            [{"field": "status", "message": "unknown status"}],
        ) from None


def allowed_next(status: str) -> list[str]:
    """What a person may move a proposal in `status` to."""
    return sorted(s.value for s in ALLOWED[ProposalStatus(status)] if s not in SYSTEM_ONLY)


def transition(conn: psycopg.Connection, proposal_id: str, new_status: str, *, actor: str | None = None,
               note: str | None = None) -> StatusChange:
    """Move a proposal to `new_status` if its status machine allows it; raise IllegalTransition if not."""
    target = parse_status(new_status)
    if target in SYSTEM_ONLY:
        raise IllegalTransition(f"proposal {proposal_id}: cannot set status '{target}' by hand: {SYSTEM_ONLY[target]}",
                                None, target.value)
    return _move(conn, proposal_id, target, actor=actor, note=note)


def mark_sent(conn: psycopg.Connection, proposal_id: str, *, doc_link: str | None = None,
              actor: str = "delivery", note: str | None = None, version: int | None = None) -> StatusChange:
    """The delivery hook: approved → sent, and the delivered document's link, in one transaction.

    `version`: the version that was delivered; refused (IllegalTransition, nothing changed) unless it
    is still the proposal's current version — a revision saved during the delivery is not `sent`.
    Delivering again a proposal that is already `sent` only updates `doc_link` (idempotent re-runs).
    """
    with conn.transaction():
        current = _lock(conn, proposal_id)
        if version is not None:
            now = conn.execute("SELECT version FROM proposals WHERE id = %s", (_uuid(proposal_id),)).fetchone()[0]
            if now != version:
                raise IllegalTransition(
                    f"proposal {proposal_id}: version {version} was delivered, but the current version is {now} "
                    f"(status '{current}'): not marked sent", current.value, S.SENT.value)
        if current == S.SENT:
            if doc_link:
                conn.execute("UPDATE proposals SET doc_link = %s WHERE id = %s", (doc_link, proposal_id))
            return StatusChange(proposal_id, current.value, current.value)
        change = _move(conn, proposal_id, S.SENT, actor=actor, note=note)
        if doc_link:
            conn.execute("UPDATE proposals SET doc_link = %s WHERE id = %s", (doc_link, proposal_id))
        return change


def content_changed(conn: psycopg.Connection, proposal_id: str, version: int, *, actor: str | None = None,
                    note: str | None = None) -> StatusChange:
    """A new version was saved (call inside the saving transaction): the proposal is a draft again."""
    current = _lock(conn, proposal_id)
    if current not in CONTENT_EDITABLE:
        raise IllegalTransition(f"proposal {proposal_id} is '{current}': its content can no longer change "
                                "(create a new proposal instead)", current.value, S.DRAFT.value)
    if current != S.DRAFT:
        _write(conn, proposal_id, current, S.DRAFT, actor, note, version)
    return StatusChange(proposal_id, current.value, S.DRAFT.value)


def ensure_content_editable(conn: psycopg.Connection, proposal_id: str) -> ProposalStatus:
    """Refuse early (before any model call) to revise or regenerate a sent or archived proposal."""
    current = current_status(conn, proposal_id)
    if current not in CONTENT_EDITABLE:
        raise IllegalTransition(f"proposal {proposal_id} is '{current}': its content can no longer change "
                                "(create a new proposal instead)", current.value, S.DRAFT.value)
    return current


def system_transition(conn: psycopg.Connection, proposal_id: str, new_status: ProposalStatus, *,
                      actor: str = "generation", note: str | None = None) -> StatusChange:
    """generating → failed, failed → generating: moves the generation run makes."""
    return _move(conn, proposal_id, new_status, actor=actor, note=note)


def current_status(conn: psycopg.Connection, proposal_id: str) -> ProposalStatus:
    row = conn.execute("SELECT status FROM proposals WHERE id = %s", (_uuid(proposal_id),)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return ProposalStatus(row[0])


def history(conn: psycopg.Connection, proposal_id: str) -> list[dict]:
    cur = conn.execute(
        """SELECT from_status, to_status, actor, note, version, changed_at FROM proposal_status_history
            WHERE proposal_id = %s ORDER BY id""", (_uuid(proposal_id),))
    return [dict(zip(("from", "to", "actor", "note", "version", "changed_at"), row)) for row in cur.fetchall()]


def _move(conn: psycopg.Connection, proposal_id: str, target: ProposalStatus, *, actor: str | None,
          note: str | None) -> StatusChange:
    with conn.transaction():
        current = _lock(conn, proposal_id)
        if target == current:
            return StatusChange(proposal_id, current.value, target.value)  # already there: nothing to do
        if target not in ALLOWED[current]:
            people = allowed_next(current)
            raise IllegalTransition(
                f"proposal {proposal_id}: cannot move from '{current}' to '{target}'"
                + (f" (from '{current}' it can go to: {', '.join(people)})" if people else
                   f" ('{current}' is final)"),
                current.value, target.value)
        _write(conn, proposal_id, current, target, actor, note, None)
        return StatusChange(proposal_id, current.value, target.value)


def _lock(conn: psycopg.Connection, proposal_id: str) -> ProposalStatus:
    row = conn.execute("SELECT status FROM proposals WHERE id = %s FOR UPDATE", (_uuid(proposal_id),)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return ProposalStatus(row[0])


def _write(conn, proposal_id, current, target, actor, note, version) -> None:
    conn.execute("UPDATE proposals SET status = %s, status_changed_at = now() WHERE id = %s",
                 (target.value, proposal_id))
    conn.execute(
        """INSERT INTO proposal_status_history (proposal_id, from_status, to_status, actor, note, version)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (proposal_id, current.value if current else None, target.value, actor, note, version))


def _uuid(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"proposal {value!r} does not exist (not a proposal id)") from None


__all__ = ["ProposalStatus", "ALLOWED", "SYSTEM_ONLY", "CONTENT_EDITABLE", "StatusChange", "transition",
           "mark_sent", "content_changed", "ensure_content_editable", "system_transition", "current_status",
           "history", "allowed_next", "parse_status"]
