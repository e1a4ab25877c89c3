"""Tasks of client enrichment. Each is one call into proposalflow.enrichment."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime, timedelta

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from proposalflow.database import connect
from proposalflow.enrichment import enrich, store
from proposalflow.reader import DatabaseCache, make_reader
from proposalflow.reader.cache import delete_expired
from proposalflow.settings import get_settings

from .retry import retry_on_transient

ENRICHED_EVENT = "proposalflow.client.enriched"


@task(name="prune-reader-cache", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def prune_reader_cache() -> int:
    """Delete reader-cache rows older than PROPOSALFLOW_READER_CACHE_TTL_HOURS (never the demo's snapshots)."""
    settings = get_settings()
    with connect(settings, autocommit=True) as conn:
        deleted = delete_expired(conn, timedelta(hours=settings.reader_cache_ttl_hours))
    get_run_logger().info("reader cache: %d expired pages deleted", deleted)
    return deleted


@task(name="select-clients-to-enrich", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def select_clients_to_enrich(client_ids: list[str] | None, stale_days: int, limit: int | None) -> list[str]:
    """Given ids, or clients never enriched / failed / older than stale_days."""
    with connect() as conn:
        due = store.select_due(conn, client_ids=client_ids, stale_days=stale_days, limit=limit)
    get_run_logger().info("%d clients to enrich", len(due))
    return [client.id for client in due]


@task(name="enrich-client-batch", retries=1, retry_delay_seconds=[10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, timeout_seconds=3600)
def enrich_client_batch(client_ids: list[str], not_recorded_since: datetime | None = None) -> dict:
    """Read, extract and record a batch of clients concurrently (within the reader's limits);
    emits `proposalflow.client.enriched` for each. A retried batch skips clients it already recorded."""
    logger = get_run_logger()
    settings = get_settings()
    with connect(settings, autocommit=True) as conn, closing(DatabaseCache.connect(settings)) as cache:
        reader = make_reader(settings, cache=cache)
        clients = store.load_sites(conn, client_ids, not_recorded_since=not_recorded_since)

        def announce(outcome: enrich.Outcome) -> None:
            logger.info("%s: %s, %d facts from %d pages%s", outcome.name, outcome.status, outcome.fact_count,
                        outcome.pages_read, f" ({outcome.error[:200]})" if outcome.error else "")
            emit_event(event=ENRICHED_EVENT,
                       resource={"prefect.resource.id": f"proposalflow.client.{outcome.client_id}",
                                 "prefect.resource.name": outcome.name},
                       payload={k: v for k, v in outcome.as_dict().items() if k not in ("client_id", "name")})

        try:
            outcomes = enrich.enrich_batch(conn, clients, reader, max_pages=settings.enrich_max_pages,
                                           llm=enrich.llm_config(settings), concurrency=settings.reader_concurrency,
                                           on_outcome=announce)
        finally:
            reader.close()
    logger.info("batch: %s", reader.stats.as_dict())
    return {"outcomes": [o.as_dict() for o in outcomes], "reader": reader.stats.as_dict(),
            "skipped": len(client_ids) - len(clients)}
