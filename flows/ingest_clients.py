"""clients.csv / .json / .jsonl / .xlsx ─ ingest-clients ─▶ clients (validated, upserted, rejects kept)"""

from __future__ import annotations

from prefect import flow

from tasks.clients import fetch_source, stage_clients, upsert_clients


@flow(name="ingest-clients")
def ingest_clients(source: str, batch_rows: int | None = None) -> dict:
    """Ingest a client file (local path or http(s) URL): CSV, JSON, JSON Lines or XLSX.

    Returns the summary: rows read, inserted, updated, unchanged, rejected, and the run id that
    keys the rejected rows in `ingestion_rejects`.
    """
    local_file = fetch_source(source)
    staged = stage_clients(local_file, batch_rows)
    summary = upsert_clients(staged.run_id)
    return summary.as_dict()
