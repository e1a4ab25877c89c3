"""The knowledge tables: the recorded embedding model, documents, chunks, failures.

Writes are batched: a batch of documents is upserted with one INSERT … ON CONFLICT over arrays,
its old chunks deleted and its new chunks written with one binary COPY — all in ONE transaction,
so a reader sees a document's old chunks or its new ones, never half of each, and a process killed
mid-batch leaves the previous state whole.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from ..errors import EmbeddingModelMismatch
from .chunking import Chunk
from .documents import Document
from .embedders import EmbeddingModel

HNSW_INDEX = "knowledge_chunks_embedding_hnsw"
GIN_INDEX = "knowledge_chunks_tsv_idx"  # created by sql/0010; dropped and rebuilt around first loads
MAX_VECTOR_INDEX_DIMENSIONS = 2000  # pgvector's HNSW limit for `vector`; longer ones are indexed as halfvec
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128  # 64 (pgvector's default) gave recall@10 0.90–0.95 at ef_search 100–200 in bench/knowledge.py


@dataclass(frozen=True)
class StoredDocument:
    id: str
    content_hash: str | None
    chunked_with: str | None
    metadata: dict | None = None


@dataclass
class EmbeddedDocument:
    document: Document
    chunks: list[Chunk]
    vectors: np.ndarray  # (len(chunks), dimension) float32


# --- the embedding model --------------------------------------------------------------------------
def recorded_model(conn: psycopg.Connection) -> EmbeddingModel | None:
    row = conn.execute("SELECT provider, model, dimension FROM knowledge_embedding_model").fetchone()
    return EmbeddingModel(*row) if row else None


def vector_expression(dimension: int) -> str:
    """The indexed expression, which queries must use verbatim for the index to apply."""
    if dimension > MAX_VECTOR_INDEX_DIMENSIONS:
        return f"(embedding::halfvec({dimension}))"
    return "embedding"


def distance_operator_class(dimension: int) -> str:
    return "halfvec_cosine_ops" if dimension > MAX_VECTOR_INDEX_DIMENSIONS else "vector_cosine_ops"


def mismatch_message(recorded: EmbeddingModel, wanted: EmbeddingModel) -> str:
    return (f"the knowledge base was embedded with {recorded}, but the settings select {wanted}. "
            f"Run `proposalflow kb reembed` to re-embed every document with {wanted.name}, or set "
            f"PROPOSALFLOW_EMBEDDINGS={recorded.provider} PROPOSALFLOW_EMBEDDING_MODEL={recorded.name} "
            "to keep the stored embeddings")


def check_model(conn: psycopg.Connection, model: EmbeddingModel) -> EmbeddingModel | None:
    """The recorded model; raises EmbeddingModelMismatch if it is not `model`."""
    recorded = recorded_model(conn)
    if recorded is not None and (recorded.name, recorded.dimension) != (model.name, model.dimension):
        raise EmbeddingModelMismatch(mismatch_message(recorded, model))
    return recorded


def bind_model(conn: psycopg.Connection, model: EmbeddingModel, *, indexes: bool = True) -> None:
    """Record `model` if none is, fixing the column to vector(N); with `indexes`, build the HNSW and
    GIN indexes if they are missing. Refuses a different model than the recorded one.
    Safe to call concurrently and repeatedly."""
    if check_model(conn, model) is not None and (not indexes or _indexes_exist(conn)):
        return
    with conn.transaction():
        conn.execute("LOCK TABLE knowledge_embedding_model IN EXCLUSIVE MODE")
        recorded = check_model(conn, model)
        if recorded is None:
            conn.execute("INSERT INTO knowledge_embedding_model (provider, model, dimension) VALUES (%s, %s, %s)",
                         (model.provider, model.name, model.dimension))
            conn.execute(f"ALTER TABLE knowledge_chunks ALTER COLUMN embedding TYPE vector({model.dimension})")
        if indexes:
            build_indexes(conn, model.dimension)


def build_indexes(conn: psycopg.Connection, dimension: int) -> None:
    conn.execute("SET LOCAL maintenance_work_mem = '512MB'")  # the HNSW graph is built in memory: much faster
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {HNSW_INDEX} ON knowledge_chunks USING hnsw "
        f"({vector_expression(dimension)} {distance_operator_class(dimension)}) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
    )
    conn.execute(f"CREATE INDEX IF NOT EXISTS {GIN_INDEX} ON knowledge_chunks USING gin (tsv)")


def defer_indexes_if_empty(conn: psycopg.Connection) -> bool:
    """Before a first load into an empty knowledge base: drop the HNSW and GIN indexes, so that
    `bind_model` builds them once after the load — about 8× faster than maintaining HNSW row by
    row. A populated knowledge base keeps its indexes (readers rely on them). Returns whether it
    dropped them. Until they are rebuilt, searches are exact scans: slower, never wrong."""
    with conn.transaction():
        conn.execute("LOCK TABLE knowledge_chunks IN SHARE ROW EXCLUSIVE MODE")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM knowledge_chunks)").fetchone()[0]:
            return False
        conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
        conn.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")
    return True


def _indexes_exist(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                        (HNSW_INDEX, GIN_INDEX)).fetchone()[0]


def start_reembedding(conn: psycopg.Connection, model: EmbeddingModel) -> int:
    """Forget every stored embedding and record `model` instead; every document becomes stale.
    One transaction. Returns the number of documents to re-embed."""
    with conn.transaction():
        conn.execute("LOCK TABLE knowledge_embedding_model IN EXCLUSIVE MODE")
        conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
        conn.execute(f"DROP INDEX IF EXISTS {GIN_INDEX}")
        conn.execute("TRUNCATE knowledge_chunks")
        conn.execute(f"ALTER TABLE knowledge_chunks ALTER COLUMN embedding TYPE vector({model.dimension})")
        conn.execute("DELETE FROM knowledge_embedding_model")
        conn.execute("INSERT INTO knowledge_embedding_model (provider, model, dimension) VALUES (%s, %s, %s)",
                     (model.provider, model.name, model.dimension))
        conn.execute("UPDATE knowledge_base SET chunked_with = NULL, chunk_count = 0, embedded_at = NULL")
        return conn.execute("SELECT count(*) FROM knowledge_base WHERE content IS NOT NULL").fetchone()[0]


# --- documents ------------------------------------------------------------------------------------
def stored_documents(conn: psycopg.Connection, uris: Sequence[str]) -> dict[str, StoredDocument]:
    rows = conn.execute(
        "SELECT source_uri, id, content_hash, chunked_with, metadata FROM knowledge_base WHERE source_uri = ANY(%s)",
        (list(uris),),
    ).fetchall()
    return {r[0]: StoredDocument(str(r[1]), r[2], r[3], r[4]) for r in rows}


def stale_documents(conn: psycopg.Connection, chunked_with: str, limit: int, after: str = "") -> list[Document]:
    """Stored documents whose chunks were not made with `chunked_with` (re-embedding), by source URI."""
    rows = conn.execute(
        """SELECT source_uri, coalesce(title, source_uri), category, content, metadata FROM knowledge_base
            WHERE content IS NOT NULL AND chunked_with IS DISTINCT FROM %s AND source_uri > %s
            ORDER BY source_uri LIMIT %s""",
        (chunked_with, after, limit),
    ).fetchall()
    return [Document(r[0], r[1], r[2], r[3], r[4] or {}) for r in rows]


_UPSERT_DOCUMENTS = """
INSERT INTO knowledge_base AS d (source_uri, title, category, content, metadata, content_hash, chunked_with,
                                 chunk_count, embedded_at)
SELECT * , now() FROM unnest(%(uris)s::text[], %(titles)s::text[], %(categories)s::text[], %(contents)s::text[],
                     %(metadata)s::jsonb[], %(hashes)s::text[], %(chunked_with)s::text[], %(counts)s::int[])
ON CONFLICT (source_uri) DO UPDATE SET
    title = EXCLUDED.title, category = EXCLUDED.category, content = EXCLUDED.content,
    metadata = EXCLUDED.metadata, content_hash = EXCLUDED.content_hash, chunked_with = EXCLUDED.chunked_with,
    chunk_count = EXCLUDED.chunk_count, embedded_at = EXCLUDED.embedded_at
RETURNING source_uri, id
"""


def write_documents(conn: psycopg.Connection, embedded: Sequence[EmbeddedDocument], chunked_with: str) -> dict[str, str]:
    """Replace the chunks of these documents, atomically (one transaction). Returns {source URI: document id}."""
    if not embedded:
        return {}
    from pgvector.psycopg import register_vector

    with conn.transaction():
        register_vector(conn)
        docs = [e.document for e in embedded]
        ids = dict(conn.execute(_UPSERT_DOCUMENTS, {
            "uris": [d.source_uri for d in docs], "titles": [d.title for d in docs],
            "categories": [d.category for d in docs], "contents": [d.text for d in docs],
            "metadata": [Jsonb(d.metadata) for d in docs], "hashes": [d.content_hash for d in docs],
            "chunked_with": [chunked_with] * len(docs), "counts": [len(e.chunks) for e in embedded],
        }).fetchall())
        document_ids = [ids[d.source_uri] for d in docs]
        conn.execute("DELETE FROM knowledge_chunks WHERE document_id = ANY(%s)", (document_ids,))
        written = copy_chunks(conn, ((ids[e.document.source_uri], e.document.category, e.chunks, e.vectors)
                                     for e in embedded))
        conn.execute("DELETE FROM knowledge_failures WHERE source_uri = ANY(%s)", ([d.source_uri for d in docs],))
    assert written == sum(len(e.chunks) for e in embedded)
    return {uri: str(i) for uri, i in ids.items()}


def copy_chunks(conn: psycopg.Connection,
                rows: Iterable[tuple[uuid.UUID, str | None, Sequence[Chunk], np.ndarray]]) -> int:
    """Binary COPY of chunks with their vectors (the connection has pgvector's types registered)."""
    written = 0
    with conn.cursor().copy(
        "COPY knowledge_chunks (document_id, position, category, heading, text, char_count, token_count, embedding)"
        " FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["uuid", "int4", "text", "text", "text", "int4", "int4", "vector"])
        for document_id, category, chunks, vectors in rows:
            for chunk, vector in zip(chunks, vectors, strict=True):
                copy.write_row((document_id, chunk.position, category, chunk.heading, chunk.text,
                                chunk.char_count, chunk.token_count, vector))
                written += 1
    return written


def touch_unchanged(conn: psycopg.Connection, updates: Sequence[tuple[str, Document]]) -> None:
    """Documents whose chunks are current but whose metadata changed (e.g. file size): keep chunks."""
    if updates:
        conn.execute(
            """UPDATE knowledge_base d SET metadata = u.metadata FROM unnest(%s::uuid[], %s::jsonb[]) AS u(id, metadata)
                WHERE d.id = u.id AND d.metadata IS DISTINCT FROM u.metadata""",
            ([i for i, _ in updates], [Jsonb(doc.metadata) for _, doc in updates]),
        )


# --- failures and pruning -------------------------------------------------------------------------
def record_failures(conn: psycopg.Connection, failures: Sequence[tuple[str, str]], flow_run_id: str | None) -> None:
    if failures:
        conn.execute(
            """INSERT INTO knowledge_failures (source_uri, reason, flow_run_id)
               SELECT * FROM unnest(%s::text[], %s::text[], %s::text[])
               ON CONFLICT (source_uri) DO UPDATE SET reason = EXCLUDED.reason, flow_run_id = EXCLUDED.flow_run_id,
                                                      failed_at = now()""",
            ([u for u, _ in failures], [r for _, r in failures], [flow_run_id] * len(failures)),
        )


def failures(conn: psycopg.Connection, limit: int = 100) -> list[dict]:
    rows = conn.execute("SELECT source_uri, reason, failed_at FROM knowledge_failures ORDER BY failed_at DESC LIMIT %s",
                        (limit,)).fetchall()
    return [{"source_uri": r[0], "reason": r[1], "failed_at": r[2]} for r in rows]


def prune_documents(conn: psycopg.Connection, prefixes: Sequence[str], seen: Iterable[str]) -> list[str]:
    """Delete documents (and, by cascade, chunks) under these URI prefixes that are not in `seen`."""
    if not prefixes:
        return []
    with conn.transaction():
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen_sources (uri text PRIMARY KEY) ON COMMIT DELETE ROWS")
        with conn.cursor().copy("COPY seen_sources (uri) FROM STDIN") as copy:
            for uri in set(seen):
                copy.write_row((uri,))
        rows = conn.execute(
            """DELETE FROM knowledge_base d
                WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) p WHERE starts_with(d.source_uri, p))
                  AND NOT EXISTS (SELECT 1 FROM seen_sources s WHERE s.uri = d.source_uri)
            RETURNING source_uri""",
            (list(prefixes),),
        ).fetchall()
        conn.execute("""DELETE FROM knowledge_failures f
                         WHERE EXISTS (SELECT 1 FROM unnest(%s::text[]) p WHERE starts_with(f.source_uri, p))
                           AND NOT EXISTS (SELECT 1 FROM seen_sources s WHERE s.uri = f.source_uri)""",
                     (list(prefixes),))
    return sorted(r[0] for r in rows)


def refresh_terms(conn: psycopg.Connection) -> int:
    """Recount in how many chunks each lexeme occurs (knowledge_terms), in one transaction."""
    with conn.transaction():
        conn.execute("LOCK TABLE knowledge_terms IN EXCLUSIVE MODE")
        conn.execute("DELETE FROM knowledge_terms")
        conn.execute("INSERT INTO knowledge_terms (lexeme, chunks) "
                     "SELECT word, ndoc FROM ts_stat('SELECT tsv FROM knowledge_chunks')")
        conn.execute("INSERT INTO knowledge_terms (lexeme, chunks) SELECT '', count(*) FROM knowledge_chunks")
        return conn.execute("SELECT count(*) - 1 FROM knowledge_terms").fetchone()[0]


def counts(conn: psycopg.Connection) -> dict:
    documents, chunks = conn.execute(
        "SELECT (SELECT count(*) FROM knowledge_base), (SELECT count(*) FROM knowledge_chunks)").fetchone()
    return {"documents": documents, "chunks": chunks}
