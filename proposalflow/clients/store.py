"""Writing clients: binary COPY into staging, then one INSERT … ON CONFLICT per run.

Nothing here loops over rows with single INSERTs: batches go through COPY and the upsert is one
statement, so a 100,000-row file is a handful of round trips.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Iterable

import orjson
import psycopg
from psycopg.types.json import Jsonb, set_json_dumps

from .normalise import ClientRecord
from .validation import Reject


@dataclass
class IngestSummary:
    run_id: str
    source: str
    read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int

    def as_dict(self) -> dict:
        return asdict(self)


def start_run(conn: psycopg.Connection, source: str, format: str, flow_run_id: str | None) -> uuid.UUID:
    run_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO ingestion_runs (id, source, format, flow_run_id) VALUES (%s, %s, %s, %s)",
        (run_id, source, format, flow_run_id),
    )
    return run_id


def abandon_stale_runs(conn: psycopg.Connection, older_than_hours: int = 24) -> int:
    """Runs that were staged but never applied (their process died): drop their staged rows."""
    cur = conn.execute(
        """UPDATE ingestion_runs SET status = 'abandoned', finished_at = now()
            WHERE status = 'staged' AND started_at < now() - make_interval(hours => %s)
        RETURNING id""",
        (older_than_hours,),
    )
    ids = [r[0] for r in cur.fetchall()]
    if ids:
        conn.execute("DELETE FROM client_staging WHERE run_id = ANY(%s)", (ids,))
    return len(ids)


def copy_staged(conn: psycopg.Connection, run_id: str, source: str, records: Iterable[ClientRecord]) -> int:
    set_json_dumps(orjson.dumps, context=conn)  # several times faster than json.dumps on this path
    count = 0
    with conn.cursor().copy(
        "COPY client_staging (run_id, row_number, natural_key, name, website, domain, external_id,"
        " contact_info, source) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["uuid", "int4", "text", "text", "text", "text", "text", "jsonb", "text"])
        for r in records:
            copy.write_row((uuid.UUID(str(run_id)), r.row_number, r.natural_key, r.name, r.website, r.domain, r.external_id,
                            Jsonb(r.contact_info), source))
            count += 1
    return count


def copy_rejects(conn: psycopg.Connection, run_id: str, file: str, rejects: Iterable[Reject]) -> int:
    count = 0
    with conn.cursor().copy(
        "COPY ingestion_rejects (run_id, file, row_number, column_name, reason, raw_row) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["uuid", "text", "int4", "text", "text", "jsonb"])
        for r in rejects:
            copy.write_row((uuid.UUID(str(run_id)), file, r.row_number, r.column, r.reason, Jsonb(_jsonable(r.raw))))
            count += 1
    return count


def finish_staging(conn: psycopg.Connection, run_id: str, rows_read: int, rejected: int) -> None:
    conn.execute("UPDATE ingestion_runs SET rows_read = %s, rejected = %s WHERE id = %s", (rows_read, rejected, run_id))


_UPSERT = """
WITH upserted AS (
    INSERT INTO clients AS c (natural_key, name, website, domain, external_id, contact_info, source)
    SELECT natural_key, name, website, domain, external_id, contact_info, source
      FROM client_staging
     WHERE run_id = %(run_id)s
    ON CONFLICT (natural_key) DO UPDATE SET
        name         = EXCLUDED.name,
        website      = COALESCE(EXCLUDED.website, c.website),
        domain       = COALESCE(EXCLUDED.domain, c.domain),
        external_id  = COALESCE(EXCLUDED.external_id, c.external_id),
        contact_info = c.contact_info || EXCLUDED.contact_info,
        source       = EXCLUDED.source
    -- only rows whose data changed are written (the source file's name alone is not a change)
    WHERE (c.name, c.website, c.domain, c.external_id, c.contact_info)
          IS DISTINCT FROM
          (EXCLUDED.name, COALESCE(EXCLUDED.website, c.website), COALESCE(EXCLUDED.domain, c.domain),
           COALESCE(EXCLUDED.external_id, c.external_id), c.contact_info || EXCLUDED.contact_info)
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM upserted
"""


def apply_staged(conn: psycopg.Connection, run_id: str) -> IngestSummary:
    """Upsert a staged run into clients, in the caller's transaction. Safe to call twice."""
    run = conn.execute(
        "SELECT status, source, rows_read, rejected, inserted, updated, unchanged FROM ingestion_runs"
        " WHERE id = %s FOR UPDATE",
        (run_id,),
    ).fetchone()
    if run is None:
        raise LookupError(f"ingestion run {run_id} does not exist")
    status, source, rows_read, rejected, inserted, updated, unchanged = run
    if status == "completed":  # a retry after a commit whose acknowledgement was lost
        return IngestSummary(str(run_id), source, rows_read, inserted, updated, unchanged, rejected)
    staged = conn.execute("SELECT count(*) FROM client_staging WHERE run_id = %s", (run_id,)).fetchone()[0]
    inserted, updated = conn.execute(_UPSERT, {"run_id": run_id}).fetchone()
    unchanged = staged - inserted - updated
    conn.execute("DELETE FROM client_staging WHERE run_id = %s", (run_id,))
    conn.execute(
        """UPDATE ingestion_runs SET status = 'completed', inserted = %s, updated = %s, unchanged = %s,
                  finished_at = now() WHERE id = %s""",
        (inserted, updated, unchanged, run_id),
    )
    return IngestSummary(str(run_id), source, rows_read, inserted, updated, unchanged, rejected)


def _jsonable(raw: dict) -> dict:
    return {str(k): (v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v))
            for k, v in raw.items()}
