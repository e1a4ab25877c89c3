"""Tasks of the knowledge base. Each is one call into proposalflow.knowledge."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from proposalflow.database import connect
from proposalflow.errors import ValidationFailed
from proposalflow.knowledge import ingest, progress, store
from proposalflow.knowledge.chunking import chunk_settings_from
from proposalflow.knowledge.documents import Source, file_source, folder_prefix, folder_sources, url_source
from proposalflow.knowledge.embedders import embedding_model, make_embedder
from proposalflow.knowledge.ingest import KnowledgeSummary
from proposalflow.knowledge.uploads import StoredUpload
from proposalflow.settings import get_settings

from .events import emit
from .retry import retry_on_transient

EVENT = "proposalflow.knowledge.embedded"


@task(name="prepare-knowledge-base", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def prepare_knowledge_base(reembed: bool = False) -> str:
    """Record the embedding model (or refuse a different one); with `reembed`, switch to it."""
    model = embedding_model(make_embedder())
    with connect(autocommit=True) as conn:
        recorded = store.recorded_model(conn)
        if reembed and (recorded is None or (recorded.name, recorded.dimension) != (model.name, model.dimension)):
            stale = store.start_reembedding(conn, model)
            get_run_logger().info("re-embedding %d documents with %s (was %s)", stale, model, recorded)
        elif not reembed:
            store.bind_model(conn, model, indexes=False)
            if store.defer_indexes_if_empty(conn):
                get_run_logger().info("first load: the HNSW and full-text indexes are built once, at the end")
    return str(model)


@task(name="list-sources", cache_policy=NO_CACHE)
def list_sources(folder: str | None, files: list[str] | None, urls: list[str] | None,
                 category: str | None) -> list[Source]:
    """The folder's files (recursively), the given files, and the URLs — nothing read yet."""
    sources: list[Source] = []
    if folder:
        sources += folder_sources(folder, category)
    sources += [file_source(f, category) for f in files or []]
    sources += [url_source(u, category) for u in urls or []]
    get_run_logger().info("%d sources to look at", len(sources))
    progress.total(len(sources))
    return sources


@task(name="embed-sources", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, timeout_seconds=3600)
def embed_sources(sources: list[Source]) -> KnowledgeSummary:
    """A batch: read → normalise → hash → skip unchanged → chunk → embed → write (one transaction)."""
    settings = get_settings()
    embedder = make_embedder(settings)
    with connect(settings, autocommit=True) as conn, _reader(settings, sources) as read_page:
        summary = ingest.embed_sources(conn, embedder, sources, chunk_settings_from(settings), reader=read_page,
                                       flow_run_id=str(flow_run.id) if flow_run.id else None)
    logger = get_run_logger()
    logger.info("%d documents: %d embedded (%d chunks), %d unchanged, %d failed", summary.documents,
                summary.embedded, summary.chunks, summary.unchanged, summary.failed)
    for failure in summary.failures:
        logger.warning("not embedded: %s", failure["reason"])
    announce(summary)
    progress.advance(len(sources))
    return summary


@task(name="embed-uploads", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, timeout_seconds=3600)
def embed_uploads(uploads: list[StoredUpload], category: str | None) -> tuple[KnowledgeSummary, list[dict]]:
    """Uploaded originals, read back from the file store: embedded, their original recorded."""
    from proposalflow.filestore import make_file_store
    from proposalflow.knowledge.uploads import embed_uploads as embed

    settings = get_settings()
    scratch = settings.home_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with connect(settings, autocommit=True) as conn:
        summary, outcomes = embed(conn, make_embedder(settings), make_file_store(settings), uploads, category=category,
                                  chunk_settings=chunk_settings_from(settings), scratch=scratch,
                                  flow_run_id=str(flow_run.id) if flow_run.id else None)
    logger = get_run_logger()
    logger.info("%d uploads: %d embedded (%d chunks), %d unchanged, %d failed", summary.documents, summary.embedded,
                summary.chunks, summary.unchanged, summary.failed)
    for failure in summary.failures:
        logger.warning("not embedded: %s", failure["reason"])
    announce(summary)
    return summary, outcomes


@task(name="reembed-documents", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE, timeout_seconds=3600)
def reembed_documents(after: str) -> tuple[str, KnowledgeSummary] | None:
    """The next batch of stored documents whose chunks are stale, re-embedded from their stored text."""
    settings = get_settings()
    with connect(settings, autocommit=True) as conn:
        batch = ingest.reembed_batch(conn, make_embedder(settings), chunk_settings_from(settings), after=after,
                                     limit=settings.kb_batch_documents)
    if batch is not None:
        get_run_logger().info("re-embedded %d documents (%d chunks)", batch[1].embedded, batch[1].chunks)
        announce(batch[1])
        progress.advance(batch[1].documents)
    return batch


@task(name="prune-documents", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def prune_documents(folder: str, seen: list[str]) -> list[str]:
    """Delete the documents under `folder` whose file is gone (their chunks go with them)."""
    with connect(autocommit=True) as conn:
        pruned = store.prune_documents(conn, [folder_prefix(folder)], seen)
    for uri in pruned:
        get_run_logger().info("pruned %s", uri)
    return pruned


@task(name="finish-knowledge-base", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=retry_on_transient,
      cache_policy=NO_CACHE)
def finish_knowledge_base(changed: bool) -> dict:
    """Build the HNSW and full-text indexes if they are missing (first loads and re-embedding
    build them once, at the end); recount the search terms if anything changed."""
    with connect(autocommit=True) as conn:
        store.bind_model(conn, embedding_model(make_embedder()))
        if changed:
            store.refresh_terms(conn)
        return store.counts(conn)


def announce(summary: KnowledgeSummary) -> None:
    """proposalflow.knowledge.embedded about each document whose chunks were (re)written."""
    for document in summary.embedded_documents:
        emit(EVENT, "knowledge", document["id"], name=document["title"],
             payload={"source_uri": document["source_uri"], "category": document["category"],
                      "chunks": document["chunks"]})


@contextmanager
def _reader(settings, sources: list[Source]) -> Iterator[Callable | None]:
    """The product's web reader (proposalflow.reader) when the batch has URLs, else nothing."""
    if not any(s.url for s in sources):
        yield None
        return
    try:
        from proposalflow.reader import make_reader
    except ImportError as exc:
        raise ValidationFailed("URL sources need the web reader (proposalflow.reader), which is not installed") from exc
    reader = make_reader(settings)
    try:
        yield reader.read
    finally:
        close = getattr(reader, "close", None)
        if callable(close):
            close()
