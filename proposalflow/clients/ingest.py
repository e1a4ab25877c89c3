"""Client ingestion, as two steps a flow (or anything else) composes:

1. `stage_source`: read the file in batches → normalise → validate → COPY valid rows into
   staging and rejects into `ingestion_rejects`. One transaction: a crash or a bad file leaves
   nothing behind.
2. `apply_run`: one INSERT … ON CONFLICT from staging into `clients`, in one transaction.

Re-running either step, or the whole ingestion, on the same input changes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import psycopg

from .normalise import normalise_row
from .reading import inspect_file, iter_batches
from .sources import LocalSource
from .store import (IngestSummary, abandon_stale_runs, apply_staged, copy_rejects, copy_staged,
                    finish_staging, start_run)
from .validation import KeyRegistry, Reject, validate_batch

Progress = Callable[[int], None]  # called with the number of rows read so far


@dataclass
class StagedRun:
    run_id: str
    source: str
    format: str
    read: int
    staged: int
    rejected: int


def stage_source(conn: psycopg.Connection, source: LocalSource, *, batch_rows: int = 20_000,
                 flow_run_id: str | None = None, on_progress: Progress | None = None,
                 timings: Counter | None = None) -> StagedRun:
    """`timings`, if given, accumulates seconds per step (read, normalise, validate, copy)."""
    timed = _timer(timings)
    plan = inspect_file(source.path, source.display_name, source.format)  # fails before any write
    mapping = plan.mapping
    keys = KeyRegistry()
    read = staged = rejected = 0
    with conn.transaction():
        abandon_stale_runs(conn)
        run_id = start_run(conn, source.display_name, plan.format, flow_run_id)
        batches = iter_batches(plan, batch_rows)
        while True:
            with timed("read"):
                batch = next(batches, None)
            if batch is None:
                break
            with timed("normalise"):
                unparsable = [Reject(r.row_number, None, f"row {r.row_number} {r.error}", r.values)
                              for r in batch if r.error]
                records = [normalise_row(r.row_number, r.values, mapping) for r in batch if not r.error]
            with timed("validate"):
                valid, rejects = validate_batch(records, keys)
            with timed("copy"):
                staged += copy_staged(conn, run_id, source.display_name, valid)
                rejected += copy_rejects(conn, run_id, source.display_name, unparsable + rejects)
            read += len(batch)
            if on_progress:
                on_progress(read)
        finish_staging(conn, run_id, read, rejected)
    return StagedRun(str(run_id), source.display_name, plan.format, read, staged, rejected)


def apply_run(conn: psycopg.Connection, run_id: str) -> IngestSummary:
    with conn.transaction():
        return apply_staged(conn, run_id)


def _timer(timings: Counter | None):
    @contextmanager
    def timed(step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if timings is not None:
                timings[step] += time.perf_counter() - started
    return timed


def rejects_of(conn: psycopg.Connection, run_id: str, limit: int = 1000) -> list[dict]:
    cur = conn.execute(
        """SELECT row_number, column_name, reason, raw_row FROM ingestion_rejects
            WHERE run_id = %s ORDER BY row_number LIMIT %s""",
        (run_id, limit),
    )
    return [dict(row_number=r[0], column=r[1], reason=r[2], raw_row=r[3]) for r in cur.fetchall()]
