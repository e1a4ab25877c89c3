"""Flow runs started through the API (`api_flow_runs`): who asked, with what, and — for runs
executed in the API process — how they ended. Prefect remains the source of a run's live state;
this table is what makes a run id readable through the API at all (a run started elsewhere is not),
and keeps results that Prefect does not persist."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from .errors import NotFound
from .pagination import Page, SortKey, keyset

MAX_RESULT_BYTES = 256 * 1024  # larger results are kept as a note, not stored


@dataclass(frozen=True)
class RunRequest:
    flow_run_id: uuid.UUID
    flow: str
    mode: str
    parameters: dict
    requested_by: uuid.UUID | None
    request_id: str | None
    requested_at: datetime
    state: str | None
    result: Any
    error: str | None
    finished_at: datetime | None
    idempotency_key: str | None


_COLUMNS = ("flow_run_id, flow, mode, parameters, requested_by, request_id, requested_at, state, result, error, "
            "finished_at, idempotency_key")


def record_request(conn: psycopg.Connection, flow_run_id: uuid.UUID, flow: str, mode: str, parameters: dict, *,
                   requested_by: uuid.UUID | None, request_id: str | None,
                   idempotency_key: str | None = None) -> None:
    """Idempotent, and safe to run after `record_outcome` (a fast in-process run may finish first)."""
    conn.execute(
        """INSERT INTO api_flow_runs (flow_run_id, flow, mode, parameters, requested_by, request_id, idempotency_key)
           VALUES (%s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (flow_run_id) DO UPDATE SET flow = EXCLUDED.flow, mode = EXCLUDED.mode,
               parameters = EXCLUDED.parameters, requested_by = EXCLUDED.requested_by,
               request_id = EXCLUDED.request_id, idempotency_key = EXCLUDED.idempotency_key""",
        (flow_run_id, flow, mode, Jsonb(parameters), requested_by, request_id, idempotency_key))


def record_outcome(conn: psycopg.Connection, flow_run_id: uuid.UUID, state: str, *, result: Any = None,
                   error: str | None = None, flow: str = "", mode: str = "in-process") -> None:
    conn.execute(
        """INSERT INTO api_flow_runs (flow_run_id, flow, mode, state, result, error, finished_at)
           VALUES (%s, %s, %s, %s, %s, %s, now())
           ON CONFLICT (flow_run_id) DO UPDATE SET state = EXCLUDED.state, result = EXCLUDED.result,
               error = EXCLUDED.error, finished_at = EXCLUDED.finished_at""",
        (flow_run_id, flow, mode, state, _json_result(result), error))


def lock_idempotency_key(conn: psycopg.Connection, requested_by: uuid.UUID, key: str) -> None:
    """Hold back every other request with the same (user, Idempotency-Key) until this connection's
    transaction ends: look up, start and record a run under it, and concurrent retries find the one run
    instead of each starting their own (and tripping the unique index)."""
    if conn.autocommit:
        raise ValueError("lock_idempotency_key needs a transaction: an autocommit lock would end at once")
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"api_flow_runs:{requested_by}:{key}",))


def find_by_idempotency_key(conn: psycopg.Connection, requested_by: uuid.UUID, key: str) -> RunRequest | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_flow_runs WHERE requested_by = %s AND idempotency_key = %s",
                       (requested_by, key)).fetchone()
    return RunRequest(*row) if row else None


def get_request(conn: psycopg.Connection, flow_run_id: str | uuid.UUID) -> RunRequest:
    try:
        run_id = flow_run_id if isinstance(flow_run_id, uuid.UUID) else uuid.UUID(str(flow_run_id))
    except ValueError:
        raise NotFound(f"run {flow_run_id!r} does not exist (not a run id)") from None
    row = conn.execute(f"SELECT {_COLUMNS} FROM api_flow_runs WHERE flow_run_id = %s", (run_id,)).fetchone()
    if row is None:
        raise NotFound(f"run {flow_run_id} was not started through this API")
    return RunRequest(*row)


RUN_SORT_KEYS = {"requested_at": SortKey("requested_at", "timestamp")}


def list_requests(conn: psycopg.Connection, *, limit: int, cursor: str | None = None,
                  flow: str | None = None, requested_by: uuid.UUID | None = None) -> Page[RunRequest]:
    """Newest first."""
    page = keyset("-requested_at", RUN_SORT_KEYS, limit=limit, cursor=cursor, id_column="flow_run_id")
    clauses, params = [], []
    if flow:
        clauses.append("flow = %s")
        params.append(flow)
    if requested_by:
        clauses.append("requested_by = %s")
        params.append(requested_by)
    if page.where:
        clauses.append(page.where)
        params += page.params
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM api_flow_runs {where} {page.order_limit}", params).fetchall()
    return page.page([RunRequest(*r) for r in rows], lambda r: r.requested_at, lambda r: r.flow_run_id)


def _json_result(result: Any) -> Jsonb | None:
    if result is None:
        return None
    try:
        text = json.dumps(result, default=str)
    except (TypeError, ValueError):
        text = json.dumps(repr(result)[:2000])
    if len(text) > MAX_RESULT_BYTES:
        return Jsonb({"note": f"the result ({len(text):,} bytes) is too large to keep here"})
    return Jsonb(json.loads(text))
