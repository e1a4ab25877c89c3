"""Enrichment in the database: which clients are due, and each client's recorded outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ..errors import NotFound, ValidationFailed


@dataclass(frozen=True)
class ClientSite:
    id: str
    name: str
    website: str | None


def parse_client_ids(client_ids: list[str]) -> list[str]:
    bad = []
    ids = []
    for value in client_ids:
        try:
            ids.append(str(uuid.UUID(str(value).strip())))
        except ValueError:
            bad.append(value)
    if bad:
        raise ValidationFailed(f"not a client id (UUID): {', '.join(map(str, bad[:5]))}",
                               [{"field": "client_ids", "message": f"{b!r} is not a UUID"} for b in bad[:20]])
    return ids


def select_due(conn: psycopg.Connection, *, client_ids: list[str] | None = None, stale_days: int = 30,
               limit: int | None = None) -> list[ClientSite]:
    """Given ids: those clients, whatever their state (NotFound names ids that do not exist).
    Otherwise clients with a website that were never enriched, whose last attempt failed, or that
    were enriched more than `stale_days` days ago — oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        if client_ids:
            ids = parse_client_ids(client_ids)
            rows = cur.execute("SELECT id::text, name, website FROM clients WHERE id = ANY(%s::uuid[]) ORDER BY name, id",
                               (ids,)).fetchall()
            missing = sorted(set(ids) - {r["id"] for r in rows})
            if missing:
                raise NotFound(f"no client with id {', '.join(missing[:5])}" + (" …" if len(missing) > 5 else ""))
            rows = rows[:limit] if limit else rows
        else:
            rows = cur.execute(
                """SELECT id::text, name, website FROM clients
                    WHERE website IS NOT NULL
                      AND (enriched_at IS NULL OR enrichment_status = 'failed'
                           OR enriched_at < now() - make_interval(days => %s))
                    ORDER BY enriched_at NULLS FIRST, name, id
                    LIMIT %s""",
                (stale_days, limit),
            ).fetchall()
    return [ClientSite(**row) for row in rows]


def load_sites(conn: psycopg.Connection, client_ids: list[str], *, not_recorded_since: datetime | None = None
               ) -> list[ClientSite]:
    """The clients of a batch; with `not_recorded_since`, those already recorded since then are
    skipped (a retried batch does not redo finished clients)."""
    rows = conn.execute(
        """SELECT id::text, name, website FROM clients
            WHERE id = ANY(%s::uuid[]) AND (%s::timestamptz IS NULL OR enriched_at IS NULL OR enriched_at < %s)
            ORDER BY name, id""",
        (client_ids, not_recorded_since, not_recorded_since),
    ).fetchall()
    return [ClientSite(*row) for row in rows]


def record_outcome(conn: psycopg.Connection, client_id: str, status: str, error: str | None,
                   enriched_data: dict | None) -> None:
    """One client's outcome, committed at once so a killed run keeps what it finished. A failure
    keeps the facts of the last successful enrichment."""
    conn.execute(
        """UPDATE clients
              SET enrichment_status = %s, enrichment_error = %s, enriched_at = now(),
                  enriched_data = COALESCE(%s, enriched_data)
            WHERE id = %s""",
        (status, error, Jsonb(enriched_data) if enriched_data is not None else None, client_id),
    )
    if not conn.autocommit:
        conn.commit()


def enrichment_of(conn: psycopg.Connection, client_id: str) -> dict:
    row = conn.execute(
        """SELECT id::text, name, website, enrichment_status, enriched_at, enrichment_error, enriched_data
             FROM clients WHERE id = %s""", (parse_client_ids([client_id])[0],)).fetchone()
    if row is None:
        raise NotFound(f"no client with id {client_id}")
    keys = ("id", "name", "website", "status", "enriched_at", "error", "enriched_data")
    return dict(zip(keys, row))


def count_recorded_since(conn: psycopg.Connection, since: datetime, client_ids: list[str] | None = None) -> int:
    return conn.execute(
        "SELECT count(*) FROM clients WHERE enriched_at >= %s AND (%s::uuid[] IS NULL OR id = ANY(%s::uuid[]))",
        (since, client_ids, client_ids),
    ).fetchone()[0]
