"""Proposals in PostgreSQL: runs (find-or-resume), versions, conversation messages, reads.

A run is one generation or revision attempt (`proposal_runs`); its id is the LangGraph thread id.
While a process works on a run it holds a session advisory lock on it: a run whose lock is free
and that is not completed belongs to a process that died (or failed), and the next identical
request resumes it from its checkpoints instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass

import psycopg
from psycopg.types.json import Jsonb

from ..errors import Conflict, NotFound
from . import status as status_machine
from .schema import ProposalContent, ProposalRecord
from .status import ProposalStatus

RESUME_WITHIN_HOURS = 24
_LOCK_CLASS = 0x7072  # advisory lock namespace of proposal runs


def request_key(kind: str, **what) -> str:
    """The identity of a request: an identical one resumes the unfinished run."""
    payload = json.dumps({"kind": kind, **{k: (v.strip() if isinstance(v, str) else v) for k, v in what.items()}},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class Run:
    id: str
    proposal_id: str
    client_id: str
    kind: str
    resumed: bool  # an unfinished run of the same request was taken over
    attempts: int


def try_lock_run(lock_conn: psycopg.Connection, run_id: str) -> bool:
    """Take the run's session advisory lock on `lock_conn` (held until it is released or the connection ends)."""
    return bool(lock_conn.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, run_id)).fetchone()[0])


def unlock_run(lock_conn: psycopg.Connection, run_id: str) -> None:
    lock_conn.execute("SELECT pg_advisory_unlock(%s, hashtext(%s))", (_LOCK_CLASS, run_id))


def start_run(conn: psycopg.Connection, lock_conn: psycopg.Connection, *, kind: str, key: str, client_id: str,
              proposal_id: str | None, brief: str | None = None, template: str | None = None,
              instruction: str | None = None, flow_run_id: str | None = None) -> Run:
    """Resume the unfinished run of this same request, or create one (and, for a new proposal, its row).

    Raises Conflict when the same request is being worked on by a live process.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, key))
        candidates = conn.execute(
            """SELECT id, proposal_id, attempts FROM proposal_runs
                WHERE request_key = %s AND status <> 'completed'
                  AND started_at > now() - make_interval(hours => %s)
                ORDER BY started_at DESC""", (key, RESUME_WITHIN_HOURS)).fetchall()
        for run_id, run_proposal, attempts in candidates:
            if try_lock_run(lock_conn, str(run_id)):
                conn.execute(
                    """UPDATE proposal_runs SET status = 'running', attempts = attempts + 1, error = NULL,
                              finished_at = NULL, flow_run_id = coalesce(%s, flow_run_id) WHERE id = %s""",
                    (flow_run_id, run_id))
                if status_machine.current_status(conn, str(run_proposal)) == ProposalStatus.FAILED:
                    status_machine.system_transition(conn, str(run_proposal), ProposalStatus.GENERATING,
                                                     note=f"run {run_id} resumed")
                return Run(str(run_id), str(run_proposal), client_id, kind, True, attempts + 1)
        if candidates:
            raise Conflict(f"this {'generation' if kind == 'generate' else 'revision'} is already running "
                           f"in another process (run {candidates[0][0]}); wait for it to finish")
        if proposal_id is None:
            proposal_id = str(conn.execute(
                """INSERT INTO proposals (client_id, status, version, brief, template, flow_run_id)
                   VALUES (%s, 'generating', 0, %s, %s, %s) RETURNING id""",
                (client_id, brief, template, flow_run_id)).fetchone()[0])
            conn.execute("""INSERT INTO proposal_status_history (proposal_id, from_status, to_status, actor, note)
                            VALUES (%s, NULL, 'generating', 'generation', 'created')""", (proposal_id,))
        else:
            status_machine.ensure_content_editable(conn, proposal_id)
        run_id = str(uuid.uuid4())
        conn.execute(
            """INSERT INTO proposal_runs (id, proposal_id, client_id, kind, request_key, brief, template, instruction,
                                          flow_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (run_id, proposal_id, client_id, kind, key, brief, template, instruction, flow_run_id))
        if not try_lock_run(lock_conn, run_id):  # a fresh uuid: only a hash collision could hold it
            raise Conflict(f"cannot lock the new run {run_id}")
    _commit(conn)
    return Run(run_id, proposal_id, client_id, kind, False, 1)


def sweep_abandoned_runs(conn: psycopg.Connection, *, older_than_hours: float = RESUME_WITHIN_HOURS) -> list[dict]:
    """Runs no one will resume: unfinished, started before the resume window, their run lock free (the process
    that ran them died and the same request was not asked again in time). Each becomes `failed`, and a proposal
    still `generating` because of it becomes `failed` too (it can then be archived, or generated again).
    Their checkpoints are deleted. Returns [{"run_id", "proposal_id"}] of what was swept."""
    rows = conn.execute(
        """SELECT id, proposal_id FROM proposal_runs
            WHERE status = 'running' AND started_at < now() - make_interval(secs => %s)
            ORDER BY started_at LIMIT 500""", (older_than_hours * 3600,)).fetchall()
    swept = []
    for run_id, proposal_id in rows:
        run_id, proposal_id = str(run_id), str(proposal_id)
        if not try_lock_run(conn, run_id):  # a live process holds it: not abandoned
            continue
        try:
            error = (f"abandoned: the process running it stopped and the same request was not asked again within "
                     f"{older_than_hours:g} h (no resume after that)")
            with conn.transaction():
                changed = conn.execute("UPDATE proposal_runs SET status = 'failed', error = %s, finished_at = now() "
                                       "WHERE id = %s AND status = 'running'", (error, run_id)).rowcount
                if changed and status_machine.current_status(conn, proposal_id) == ProposalStatus.GENERATING:
                    status_machine.system_transition(conn, proposal_id, ProposalStatus.FAILED, actor="sweep",
                                                     note=f"run {run_id} {error}")
                for table in ("checkpoint_writes", "checkpoint_blobs", "checkpoints"):
                    conn.execute(f"DELETE FROM {table} WHERE thread_id = %s", (run_id,))
            _commit(conn)
            if changed:
                swept.append({"run_id": run_id, "proposal_id": proposal_id})
        finally:
            unlock_run(conn, run_id)
    return swept


def completed_run(conn: psycopg.Connection, key: str) -> tuple[str, str, int] | None:
    """(run id, proposal id, version) of the latest completed run of this request whose proposal is still
    in use (not archived) — an identical request then returns it instead of writing another proposal."""
    row = conn.execute(
        """SELECT r.id, r.proposal_id, r.version FROM proposal_runs r JOIN proposals p ON p.id = r.proposal_id
            WHERE r.request_key = %s AND r.status = 'completed' AND p.status <> 'archived'
            ORDER BY r.finished_at DESC LIMIT 1""", (key,)).fetchone()
    return (str(row[0]), str(row[1]), row[2]) if row else None


def fail_run(conn: psycopg.Connection, run: Run, error: str) -> None:
    """The run stopped on an error: record it; a first generation marks its proposal 'failed'."""
    with conn.transaction():
        conn.execute("UPDATE proposal_runs SET status = 'failed', error = %s, finished_at = now() "
                     "WHERE id = %s AND status <> 'completed'", (error[:2000], run.id))
        if status_machine.current_status(conn, run.proposal_id) == ProposalStatus.GENERATING:
            status_machine.system_transition(conn, run.proposal_id, ProposalStatus.FAILED, note=error[:500])
    _commit(conn)


def save_version(conn: psycopg.Connection, *, run_id: str, proposal_id: str, content: dict, kind: str,
                 flow_run_id: str | None, instruction: str | None = None, diff_summary: str | None = None,
                 reply: str | None = None, base_version: int | None = None) -> dict:
    """Save a new version and make it current, once per run (a resumed run that saved already gets the same)."""
    model = ProposalContent.model_validate(content)
    with conn.transaction():
        done = conn.execute("SELECT proposal_id, version FROM proposal_versions WHERE run_id = %s",
                            (run_id,)).fetchone()
        if done:
            return {"proposal_id": str(done[0]), "version": done[1]}
        current = conn.execute("SELECT version FROM proposals WHERE id = %s FOR UPDATE", (proposal_id,)).fetchone()
        if current is None:
            raise NotFound(f"proposal {proposal_id} does not exist")
        if base_version is not None and current[0] != base_version:
            raise Conflict(f"proposal {proposal_id} changed while this revision ran (version {base_version} → "
                           f"{current[0]}); ask again")
        if kind == "revised" and diff_summary == "no change":  # nothing to keep: the conversation only
            conn.execute("""INSERT INTO proposal_messages (proposal_id, role, content, version, run_id)
                            VALUES (%s, 'user', %s, %s, %s), (%s, 'assistant', %s, %s, %s)""",
                         (proposal_id, instruction, current[0], run_id, proposal_id,
                          ((reply or "").strip() + "\n" if reply else "") + "Nothing changed: no new version.",
                          current[0], run_id))
            conn.execute("UPDATE proposal_runs SET status = 'completed', version = %s, finished_at = now(), "
                         "error = NULL WHERE id = %s", (current[0], run_id))
            result = {"proposal_id": proposal_id, "version": current[0]}
        else:
            version = current[0] + 1
            data = model.model_dump(mode="json")
            conn.execute(
                """INSERT INTO proposal_versions (proposal_id, version, title, content, kind, instruction, diff_summary,
                                                  run_id, flow_run_id)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (proposal_id, version, model.title, Jsonb(data), kind, instruction, diff_summary, run_id, flow_run_id))
            conn.execute(
                """UPDATE proposals SET title = %s, content = %s, version = %s, flow_run_id = %s,
                          brief = coalesce(%s, brief), template = coalesce(%s, template) WHERE id = %s""",
                (model.title, Jsonb(data), version, flow_run_id, model.metadata.brief, model.metadata.template,
                 proposal_id))
            status_machine.content_changed(conn, proposal_id, version, actor="generation" if kind == "generated" else
                                           "revision", note=f"version {version} {kind}")
            if instruction is not None:
                conn.execute("""INSERT INTO proposal_messages (proposal_id, role, content, version, run_id)
                                VALUES (%s, 'user', %s, %s, %s), (%s, 'assistant', %s, %s, %s)""",
                             (proposal_id, instruction, version, run_id,
                              proposal_id, _assistant_message(reply, diff_summary, version), version, run_id))
            conn.execute("UPDATE proposal_runs SET status = 'completed', version = %s, finished_at = now(), error = NULL "
                         "WHERE id = %s", (version, run_id))
            result = {"proposal_id": proposal_id, "version": version}
    _commit(conn)  # outside the transaction block: committing inside it is refused
    return result


def _assistant_message(reply: str | None, diff: str | None, version: int) -> str:
    text = (reply or "").strip()
    return (text + "\n" if text else "") + f"Saved version {version}. Changes: {diff or 'none'}."


def get(conn: psycopg.Connection, proposal_id: str, version: int | None = None) -> ProposalRecord:
    """A proposal with its current content, or with the content of one of its versions."""
    row = conn.execute(
        """SELECT p.id, p.client_id, c.name, p.status, p.version, p.title, p.content, p.doc_link, p.flow_run_id,
                  p.template, p.brief, p.created_at, p.updated_at,
                  array(SELECT v.version FROM proposal_versions v WHERE v.proposal_id = p.id ORDER BY v.version)
             FROM proposals p JOIN clients c ON c.id = p.client_id WHERE p.id = %s""",
        (_uuid(proposal_id),)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    record = dict(zip(("id", "client_id", "client_name", "status", "version", "title", "content", "doc_link",
                       "flow_run_id", "template", "brief", "created_at", "updated_at", "versions"), row))
    record["id"], record["client_id"] = str(record["id"]), str(record["client_id"])
    if version is not None and version != record["version"]:
        v = conn.execute("""SELECT title, content, flow_run_id, diff_summary, created_at FROM proposal_versions
                             WHERE proposal_id = %s AND version = %s""", (record["id"], version)).fetchone()
        if v is None:
            known = ", ".join(map(str, record["versions"])) or "none yet"
            raise NotFound(f"proposal {proposal_id} has no version {version} (versions: {known})")
        record.update(version=version, title=v[0], content=v[1], flow_run_id=v[2], diff_summary=v[3],
                      updated_at=v[4])
    elif record["version"]:
        record["diff_summary"] = conn.execute(
            "SELECT diff_summary FROM proposal_versions WHERE proposal_id = %s AND version = %s",
            (record["id"], record["version"])).fetchone()[0]
    return ProposalRecord.model_validate(record)


def versions(conn: psycopg.Connection, proposal_id: str) -> list[dict]:
    rows = conn.execute(
        """SELECT version, kind, title, instruction, diff_summary, flow_run_id, created_at FROM proposal_versions
            WHERE proposal_id = %s ORDER BY version""", (_uuid(proposal_id),)).fetchall()
    return [dict(zip(("version", "kind", "title", "instruction", "diff_summary", "flow_run_id", "created_at"), r))
            for r in rows]


def messages(conn: psycopg.Connection, proposal_id: str, limit: int | None = None) -> list[dict]:
    """The conversation about a proposal, oldest first (the last `limit` messages)."""
    rows = conn.execute(
        """SELECT role, content, version, created_at FROM (
               SELECT id, role, content, version, created_at FROM proposal_messages WHERE proposal_id = %s
                ORDER BY id DESC LIMIT %s) m ORDER BY id""", (_uuid(proposal_id), limit)).fetchall()
    return [{"role": r[0], "content": r[1], "version": r[2], "created_at": r[3]} for r in rows]


def list_proposals(conn: psycopg.Connection, *, client_id: str | None = None, status: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[dict]:
    rows = conn.execute(
        """SELECT p.id, p.client_id, c.name, p.status, p.version, p.title, p.doc_link, p.created_at, p.updated_at
             FROM proposals p JOIN clients c ON c.id = p.client_id
            WHERE (%(client)s::uuid IS NULL OR p.client_id = %(client)s::uuid)
              AND (%(status)s::text IS NULL OR p.status = %(status)s)
            ORDER BY p.updated_at DESC, p.id LIMIT %(limit)s OFFSET %(offset)s""",
        {"client": client_id, "status": status, "limit": limit, "offset": offset}).fetchall()
    return [dict(zip(("id", "client_id", "client_name", "status", "version", "title", "doc_link", "created_at",
                      "updated_at"), (str(r[0]), str(r[1]), *r[2:]))) for r in rows]


def client_ids(conn: psycopg.Connection) -> list[str]:
    """Every client, by name: what a batch generation covers when it is given no list."""
    return [str(r[0]) for r in conn.execute("SELECT id FROM clients ORDER BY name, id")]


def client_of(conn: psycopg.Connection, proposal_id: str) -> tuple[str, int]:
    row = conn.execute("SELECT client_id, version FROM proposals WHERE id = %s", (_uuid(proposal_id),)).fetchone()
    if row is None:
        raise NotFound(f"proposal {proposal_id} does not exist")
    return str(row[0]), row[1]


def _commit(conn: psycopg.Connection) -> None:
    if not conn.autocommit:
        conn.commit()


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"proposal {value!r} does not exist (not a proposal id)") from None
