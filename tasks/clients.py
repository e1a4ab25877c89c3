"""Tasks of client ingestion. Each is one call into proposalflow.clients.ingest."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from proposalflow.clients import ingest
from proposalflow.clients.sources import LocalSource, resolve_source
from proposalflow.clients.store import IngestSummary
from proposalflow.database import connect
from proposalflow.settings import get_settings

from .events import emit
from .retry import retry_on_transient


@task(name="fetch-source", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, timeout_seconds=900)
def fetch_source(path_or_url: str) -> LocalSource:
    """A local path as is; a URL downloaded under PROPOSALFLOW_HOME/downloads."""
    return resolve_source(path_or_url, get_settings().home_dir / "downloads")


@task(name="stage-clients", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def stage_clients(source: LocalSource, batch_rows: int | None = None) -> ingest.StagedRun:
    """Read → normalise → validate → stage, in batches, in one transaction."""
    logger = get_run_logger()
    settings = get_settings()
    with connect(settings) as conn:
        staged = ingest.stage_source(
            conn, source, batch_rows=batch_rows or settings.ingest_batch_rows,
            flow_run_id=str(flow_run.id) if flow_run.id else None,
            on_progress=lambda n: logger.info("read %s rows of %s", f"{n:,}", source.display_name),
        )
    logger.info("staged %s rows, rejected %s (run %s)", f"{staged.staged:,}", f"{staged.rejected:,}", staged.run_id)
    return staged


@task(name="upsert-clients", retries=3, retry_delay_seconds=[1, 5, 20], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def upsert_clients(run_id: str) -> IngestSummary:
    """One INSERT … ON CONFLICT of the staged rows into clients."""
    with connect() as conn:
        summary = ingest.apply_run(conn, run_id)
    get_run_logger().info(
        "clients: %d inserted, %d updated, %d unchanged, %d rejected",
        summary.inserted, summary.updated, summary.unchanged, summary.rejected,
    )
    emit("proposalflow.clients.ingested", "ingestion-run", summary.run_id, name=summary.source,
         payload=summary.as_dict())
    return summary
