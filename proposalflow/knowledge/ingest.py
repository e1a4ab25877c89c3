"""Embedding knowledge: read → normalise → hash → skip unchanged → chunk → embed → write.

The steps a flow composes (each for a batch of sources or documents):

- `read_documents`: read and normalise each source and compare its hash with the stored one;
  unchanged documents are skipped, unreadable ones come back as failures with their reason.
- `embed_documents`: chunk the changed documents, embed all their chunks in provider-sized
  batches, and replace each document's chunks atomically (store.write_documents).

And the one-call entry points the CLI, the API and tests share:

- `add_file(conn, embedder, path, category=…, source_uri=…)`: ONE file (an upload) → outcome.
- `add_documents(conn, embedder, sources, …)`: any number of sources, in batches → summary.
- `reembed(conn, embedder)`: every stored document again, from its stored text, with the
  embedder's model (after a model change).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import psycopg
from langchain_core.embeddings import Embeddings

from ..errors import ConfigurationError, SourceUnreadable, ValidationFailed
from . import store
from .chunking import ChunkSettings, chunk_document
from .documents import Document, Reader, Source, file_source, read_source
from .embedders import EmbeddingModel, embedding_model

T = TypeVar("T")
Progress = Callable[[int], None]  # called with how many sources (or documents) are done so far
EMBED_BATCH = 512  # chunk texts per call into the embedder (which splits further per request limits)


@dataclass
class ReadBatch:
    changed: list[Document] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source URI, reason)

    @property
    def seen(self) -> list[str]:
        return [d.source_uri for d in self.changed] + self.unchanged + [u for u, _ in self.failed]


@dataclass
class KnowledgeSummary:
    documents: int = 0          # sources looked at
    embedded: int = 0           # documents whose chunks were (re)written
    unchanged: int = 0          # skipped: same content, same model and chunking
    failed: int = 0
    chunks: int = 0             # chunks written
    pruned: int = 0
    failures: list[dict] = field(default_factory=list)  # [{source_uri, reason}]
    # [{id, source_uri, title, category, chunks}] of the documents whose chunks were written
    embedded_documents: list[dict] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)

    def add(self, other: "KnowledgeSummary") -> "KnowledgeSummary":
        for name in ("documents", "embedded", "unchanged", "failed", "chunks", "pruned"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures += other.failures
        self.embedded_documents += other.embedded_documents
        self.seen += other.seen
        return self

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("seen")
        return data


def signature(model: EmbeddingModel, chunk_settings: ChunkSettings) -> str:
    """What `knowledge_base.chunked_with` holds: chunks made otherwise are re-made."""
    return f"{model.name}|{chunk_settings.signature}"


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- the steps ------------------------------------------------------------------------------------
def read_documents(conn: psycopg.Connection, sources: Sequence[Source], chunked_with: str, *,
                   reader: Reader | None = None) -> ReadBatch:
    """Read a batch of sources; sort them into changed, unchanged and failed. Writes nothing."""
    result = ReadBatch()
    documents: list[Document] = []
    for source in sources:
        try:
            documents.append(read_source(source, reader))
        except SourceUnreadable as exc:
            result.failed.append((source.uri, str(exc)))
        except Exception as exc:  # noqa: BLE001 - e.g. a URL that cannot be fetched: recorded, others go on
            result.failed.append((source.uri, f"{source.display}: {type(exc).__name__}: {exc}"))
    stored = store.stored_documents(conn, [d.source_uri for d in documents])
    touched = []
    for document in documents:
        known = stored.get(document.source_uri)
        if known and known.content_hash == document.content_hash and known.chunked_with == chunked_with:
            result.unchanged.append(document.source_uri)
            if known.metadata != document.metadata:  # e.g. only trailing spaces changed: same chunks
                touched.append((known.id, document))
        else:
            result.changed.append(document)
    store.touch_unchanged(conn, touched)
    return result


def embed_documents(conn: psycopg.Connection, embedder: Embeddings, documents: Sequence[Document],
                    chunk_settings: ChunkSettings, *, model: EmbeddingModel | None = None) -> KnowledgeSummary:
    """Chunk, embed and write a batch of documents (one transaction for the writes).

    If the batch's embedding request is refused as invalid, each document is retried alone so one
    bad document is recorded as failed and the others are written. Provider outages
    (IntegrationFailed) propagate: the task retries the batch.
    """
    model = model or embedding_model(embedder)
    summary = KnowledgeSummary()
    chunked = [(d, chunk_document(d.title, d.text, chunk_settings)) for d in documents]
    try:
        vectors = _embed([c.text for _, chunks in chunked for c in chunks], embedder, model)
        pieces = _split(vectors, [len(chunks) for _, chunks in chunked])
        embedded = [store.EmbeddedDocument(d, chunks, v) for (d, chunks), v in zip(chunked, pieces)]
    except ValidationFailed:
        embedded = []
        for d, chunks in chunked:
            try:
                embedded.append(store.EmbeddedDocument(d, chunks, _embed([c.text for c in chunks], embedder, model)))
            except ValidationFailed as exc:
                summary.failures.append({"source_uri": d.source_uri, "reason": f"{d.source_uri}: {exc}"})
    ids = store.write_documents(conn, embedded, signature(model, chunk_settings))
    summary.chunks = sum(len(e.chunks) for e in embedded)
    summary.embedded = len(embedded)
    summary.embedded_documents = [
        {"id": ids[e.document.source_uri], "source_uri": e.document.source_uri, "title": e.document.title,
         "category": e.document.category, "chunks": len(e.chunks)} for e in embedded]
    summary.failed = len(summary.failures)
    return summary


def _embed(texts: list[str], embedder: Embeddings, model: EmbeddingModel) -> np.ndarray:
    if not texts:
        return np.zeros((0, model.dimension), dtype=np.float32)
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        part = texts[start:start + EMBED_BATCH]
        embed_array = getattr(embedder, "embed_array", None)
        parts.append(embed_array(part) if embed_array else np.asarray(embedder.embed_documents(part), dtype=np.float32))
    vectors = np.concatenate(parts)
    if vectors.shape != (len(texts), model.dimension):
        raise ConfigurationError(f"the embedder returned vectors of shape {vectors.shape}, "
                                 f"expected ({len(texts)}, {model.dimension}) for {model}")
    return vectors


def _split(vectors: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    return np.split(vectors, np.cumsum(sizes)[:-1]) if sizes else []


# --- one-call entry points ------------------------------------------------------------------------
def add_documents(conn: psycopg.Connection, embedder: Embeddings, sources: Iterable[Source], *,
                  reader: Reader | None = None, chunk_settings: ChunkSettings | None = None,
                  batch_documents: int = 32, flow_run_id: str | None = None,
                  on_progress: Progress | None = None) -> KnowledgeSummary:
    """Embed any number of sources, batch by batch; unchanged ones are skipped, failures recorded."""
    chunk_settings = chunk_settings or ChunkSettings()
    model = embedding_model(embedder)
    store.bind_model(conn, model, indexes=False)
    store.defer_indexes_if_empty(conn)  # a first load builds its indexes once, at the end
    chunked_with = signature(model, chunk_settings)
    summary = KnowledgeSummary()
    for batch in batched(sources, batch_documents):
        summary.add(embed_sources(conn, embedder, batch, chunk_settings, chunked_with=chunked_with, model=model,
                                  reader=reader, flow_run_id=flow_run_id))
        if on_progress:
            on_progress(summary.documents)
    store.bind_model(conn, model)  # builds the indexes if they are missing
    if summary.embedded:
        store.refresh_terms(conn)
    return summary


def embed_sources(conn: psycopg.Connection, embedder: Embeddings, sources: Sequence[Source],
                  chunk_settings: ChunkSettings, *, chunked_with: str | None = None,
                  model: EmbeddingModel | None = None, reader: Reader | None = None,
                  flow_run_id: str | None = None) -> KnowledgeSummary:
    """One batch of sources, read to written (the model must already be bound)."""
    model = model or embedding_model(embedder)
    chunked_with = chunked_with or signature(model, chunk_settings)
    read = read_documents(conn, sources, chunked_with, reader=reader)
    summary = embed_documents(conn, embedder, read.changed, chunk_settings, model=model)
    summary.failures = [{"source_uri": u, "reason": r} for u, r in read.failed] + summary.failures
    summary.failed = len(summary.failures)
    summary.documents = len(sources)
    summary.unchanged = len(read.unchanged)
    summary.seen = read.seen
    store.record_failures(conn, [(f["source_uri"], f["reason"]) for f in summary.failures], flow_run_id)
    if not conn.autocommit:
        conn.commit()  # each batch is kept, whatever happens to the next one
    return summary


@dataclass
class DocumentOutcome:
    source_uri: str
    status: str        # "embedded" or "unchanged"
    document_id: str
    title: str
    category: str | None
    chunks: int


def add_file(conn: psycopg.Connection, embedder: Embeddings, path: str | Path, *, category: str | None = None,
             source_uri: str | None = None, title: str | None = None,
             chunk_settings: ChunkSettings | None = None) -> DocumentOutcome:
    """Add (or update) ONE file, e.g. an upload. `source_uri` names it (default: its file:// URI),
    so uploading a new version under the same name replaces the old one's chunks.

    Raises SourceUnreadable (naming the file) if it cannot be read; writes nothing then.
    """
    chunk_settings = chunk_settings or ChunkSettings()
    model = embedding_model(embedder)
    store.bind_model(conn, model)
    chunked_with = signature(model, chunk_settings)
    source = file_source(path, category, source_uri=source_uri, title=title)
    document = read_source(source)  # raises SourceUnreadable
    known = store.stored_documents(conn, [document.source_uri]).get(document.source_uri)
    status = "unchanged"
    if not (known and known.content_hash == document.content_hash and known.chunked_with == chunked_with):
        summary = embed_documents(conn, embedder, [document], chunk_settings, model=model)
        if summary.failures:
            raise SourceUnreadable(summary.failures[0]["reason"])
        status = "embedded"
    row = conn.execute("SELECT id, chunk_count FROM knowledge_base WHERE source_uri = %s",
                       (document.source_uri,)).fetchone()
    if not conn.autocommit:
        conn.commit()
    return DocumentOutcome(document.source_uri, status, str(row[0]), document.title, document.category, row[1])


def reembed(conn: psycopg.Connection, embedder: Embeddings, *, chunk_settings: ChunkSettings | None = None,
            batch_documents: int = 32, everything: bool = False,
            on_progress: Progress | None = None) -> KnowledgeSummary:
    """Re-embed stored documents from their stored text with the embedder's model.

    With another model than the recorded one (or `everything`), all chunks are dropped first and
    the new model recorded; then every stale document is embedded again, batch by batch. Killed
    half-way, a re-run continues with the documents still stale.
    """
    chunk_settings = chunk_settings or ChunkSettings()
    model = embedding_model(embedder)
    recorded = store.recorded_model(conn)
    if everything or recorded is None or (recorded.name, recorded.dimension) != (model.name, model.dimension):
        store.start_reembedding(conn, model)
    summary = KnowledgeSummary()
    after = ""
    while True:
        batch = reembed_batch(conn, embedder, chunk_settings, after=after, limit=batch_documents, model=model)
        if batch is None:
            break
        after, part = batch
        summary.add(part)
        if on_progress:
            on_progress(summary.documents)
    store.bind_model(conn, model)  # builds the HNSW index if re-embedding dropped it
    store.refresh_terms(conn)
    return summary


def reembed_batch(conn: psycopg.Connection, embedder: Embeddings, chunk_settings: ChunkSettings, *, after: str,
                  limit: int, model: EmbeddingModel | None = None) -> tuple[str, KnowledgeSummary] | None:
    """The next `limit` stale documents after source URI `after`, re-embedded; None when none is left."""
    model = model or embedding_model(embedder)
    documents = store.stale_documents(conn, signature(model, chunk_settings), limit, after)
    if not documents:
        return None
    summary = embed_documents(conn, embedder, documents, chunk_settings, model=model)
    summary.documents = len(documents)
    return documents[-1].source_uri, summary
