"""clients.website ─ enrich-clients ─▶ clients.enriched_data (Reader → extract → facts with sources)

prune-reader-cache → select-clients-to-enrich → enrich-client-batch × N"""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from proposalflow.enrichment.enrich import combine
from proposalflow.errors import IntegrationFailed
from proposalflow.settings import get_settings
from tasks.enrichment import enrich_client_batch, prune_reader_cache, select_clients_to_enrich


BATCHES_AT_ONCE = 4  # each batch holds two database connections and its own client threads


@flow(name="enrich-clients", task_runner=ThreadPoolTaskRunner(max_workers=BATCHES_AT_ONCE))
def enrich_clients(client_ids: list[str] | None = None, stale_days: int = 30, limit: int | None = None) -> dict:
    """Enrich the given clients, or those never enriched, last failed, or enriched more than
    `stale_days` ago (at most `limit`). Batches run concurrently; the reader's rate limits are
    shared by all of them. Each client's outcome (ok / partial / failed + reason) is recorded on
    the client; a failing client never stops the others.
    """
    started = datetime.now(timezone.utc)
    prune_reader_cache()  # pages past the cache lifetime would never be served again
    due = select_clients_to_enrich(client_ids, stale_days, limit)
    size = get_settings().enrich_batch_size
    batches = [due[i:i + size] for i in range(0, len(due), size)]
    futures = enrich_client_batch.map(batches, not_recorded_since=unmapped(started))
    results, errors = [], []
    for batch, future in zip(batches, futures):
        try:
            results.append(future.result())
        except Exception as exc:  # noqa: BLE001 - the other batches' work is recorded; report this one
            errors.append(f"a batch of {len(batch)} clients failed: {type(exc).__name__}: {exc}")
    summary = combine(results)
    if errors:
        raise IntegrationFailed("; ".join(errors) + f" (the other {summary['clients']} clients were recorded)")
    return summary
