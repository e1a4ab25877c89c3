"""The delivery records: one `deliveries` row per (proposal, version, target), one `delivery_steps`
row per side effect with its idempotency key.

`once` is the exactly-once discipline: under an advisory lock on the key, a step that is `done`
returns its recorded result; a `pending` one (an earlier attempt died between the side effect and
the record, or failed in a way that leaves it unknown whether the service acted) is first looked
up remotely; otherwise the step is marked pending, made, and marked done with its result. A step
whose attempt was refused outright (a 4xx, bad settings: `definitely_not_made`) is marked `failed`
and is simply made on the next run. Each write commits on its own: the connection must be in
autocommit mode.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg
from psycopg.types.json import Jsonb

from ..errors import ConfigurationError, IntegrationFailed, ProposalflowError


@dataclass(frozen=True)
class StepOutcome:
    result: dict
    made: bool  # True: this call made the side effect; False: recorded earlier, or found remotely
    recovered: bool = False  # found remotely after an unrecorded earlier attempt


def require_autocommit(conn: psycopg.Connection) -> None:
    if not conn.autocommit:
        raise ConfigurationError("delivery needs an autocommit connection: each step's record commits on its own")


def open_delivery(conn: psycopg.Connection, proposal_id: str, version: int, target: str, *,
                  flow_run_id: str | None) -> tuple[str, str, bool]:
    """The delivery row for (proposal, version, target): (id, status, created)."""
    row = conn.execute(
        """INSERT INTO deliveries (proposal_id, version, target, flow_run_id) VALUES (%s, %s, %s, %s)
           ON CONFLICT (proposal_id, version, target) DO NOTHING RETURNING id, status""",
        (proposal_id, version, target, flow_run_id)).fetchone()
    if row:
        return str(row[0]), row[1], True
    row = conn.execute("SELECT id, status FROM deliveries WHERE proposal_id = %s AND version = %s AND target = %s",
                       (proposal_id, version, target)).fetchone()
    return str(row[0]), row[1], False


def find_delivery(conn: psycopg.Connection, proposal_id: str, version: int, target: str) -> dict | None:
    row = conn.execute(
        """SELECT id, status, mail_state, doc_link, result, attempts, completed_at FROM deliveries
            WHERE proposal_id = %s AND version = %s AND target = %s""", (proposal_id, version, target)).fetchone()
    if row is None:
        return None
    return dict(zip(("id", "status", "mail_state", "doc_link", "result", "attempts", "completed_at"), row))


def restart_delivery(conn: psycopg.Connection, delivery_id: str, flow_run_id: str | None) -> None:
    conn.execute("""UPDATE deliveries SET status = 'running', error = NULL, attempts = attempts + 1,
                           flow_run_id = coalesce(%s, flow_run_id) WHERE id = %s""", (flow_run_id, delivery_id))


def fail_delivery(conn: psycopg.Connection, delivery_id: str, error: str) -> None:
    """Mark the run failed; the first error of a run (the step's own, with its name) is the one kept."""
    conn.execute("""UPDATE deliveries SET status = 'failed',
                           error = CASE WHEN status = 'failed' AND error IS NOT NULL THEN error ELSE %s END
                     WHERE id = %s AND status <> 'completed'""", (error[:2000], delivery_id))


def step_state(conn: psycopg.Connection, delivery_id: str, step: str) -> tuple[str, dict | None] | None:
    row = conn.execute("SELECT state, result FROM delivery_steps WHERE delivery_id = %s AND step = %s",
                       (delivery_id, step)).fetchone()
    return (row[0], row[1]) if row else None


def steps_of(conn: psycopg.Connection, delivery_id: str) -> dict[str, dict]:
    rows = conn.execute("""SELECT step, idempotency_key, state, attempts, result, completed_at FROM delivery_steps
                            WHERE delivery_id = %s""", (delivery_id,)).fetchall()
    return {r[0]: {"key": r[1], "state": r[2], "attempts": r[3], "result": r[4], "completed_at": r[5]} for r in rows}


def once(conn: psycopg.Connection, delivery_id: str, step: str, key: str, make: Callable[[], dict],
         find: Callable[[], dict | None] | None = None) -> StepOutcome:
    """Make the side effect of `step` at most once per key (see the module's doc)."""
    require_autocommit(conn)
    with key_lock(conn, key):
        existing = step_state(conn, delivery_id, step)
        if existing and existing[0] == "done":
            return StepOutcome(existing[1] or {}, made=False)
        if existing and existing[0] == "pending" and find is not None:  # an earlier attempt may have made it
            found = find()
            if found is not None:
                _done(conn, delivery_id, step, found)
                return StepOutcome(found, made=False, recovered=True)
        conn.execute(
            """INSERT INTO delivery_steps (delivery_id, step, idempotency_key, state, attempts)
               VALUES (%s, %s, %s, 'pending', 1)
               ON CONFLICT (delivery_id, step) DO UPDATE SET state = 'pending', attempts = delivery_steps.attempts + 1""",
            (delivery_id, step, key))
        try:
            result = make()
        except BaseException as exc:
            conn.execute("UPDATE delivery_steps SET last_error = %s, state = %s WHERE delivery_id = %s AND step = %s",
                         (f"{type(exc).__name__}: {exc}"[:2000], "failed" if definitely_not_made(exc) else "pending",
                          delivery_id, step))
            raise
        _done(conn, delivery_id, step, result)
        return StepOutcome(result, made=True)


@contextmanager
def key_lock(conn: psycopg.Connection, key: str) -> Iterator[None]:
    """A session advisory lock on `key`: two runs of the same step take turns, and a crashed run's
    lock goes away with its connection. Not behind a transaction pooler (Supabase, port 6543), where
    a session lock could be left behind on a pooled backend: there the step goes unlocked — a crash
    is still safe, but two runs of the same step at the same moment are not kept apart."""
    if conn.info.port == 6543 or "pooler.supabase.com" in (conn.info.host or ""):
        yield
        return
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def definitely_not_made(exc: BaseException) -> bool:
    """A refusal (the service answered no, or our own settings/input stopped it) — unlike a 5xx after
    retries, a lost connection or a killed process, after which the side effect may exist."""
    if getattr(exc, "side_effect_possible", None) is False:
        return True  # e.g. an SMTP server that refused the connection or the message
    return isinstance(exc, ProposalflowError) and not isinstance(exc, IntegrationFailed)


def _done(conn: psycopg.Connection, delivery_id: str, step: str, result: dict) -> None:
    conn.execute("""UPDATE delivery_steps SET state = 'done', result = %s, completed_at = now(), last_error = NULL
                     WHERE delivery_id = %s AND step = %s""", (Jsonb(result), delivery_id, step))
