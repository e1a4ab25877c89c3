"""Hybrid retrieval over the knowledge base: vector search + full-text search, fused with RRF.

- Vector part: the N nearest chunks by cosine distance through the HNSW index, with
  `hnsw.ef_search` raised for recall. With a category filter, pgvector would filter AFTER the
  index scan and could return fewer than N rows; `hnsw.iterative_scan = relaxed_order` makes it
  keep scanning until N rows pass the filter (the outer query re-sorts by exact distance).
  That setting needs pgvector ≥ 0.8 (Supabase has it): a filtered search on an older pgvector
  logs a warning naming the version (its results may come back short) instead of failing.
- Full-text part: the N best chunks by `ts_rank` for an OR of the query's stemmed words (the
  GIN index on the generated `tsv` column; headings weigh more than body text). Only the
  question's rarest words are kept — rarest first, while the chunks they occur in add up to at
  most TEXT_MATCH_BUDGET (counts from `knowledge_terms`) — so common words, which BM25-style
  scoring would weigh little anyway, cannot make one query rank most of the table. A question
  made only of words that each occur in more chunks than the budget is answered by the vector
  part alone: ranking every chunk of its rarest word instead took the median hybrid query at
  100,000 chunks from 12–19 ms to 241 ms (bench/README.md).
- Reciprocal rank fusion: score = Σ 1 / (60 + rank) over the two lists.

A chunk's id is stable while its document is unchanged (unchanged documents are never
re-chunked), so proposals cite `chunk_id`s; `chunks_exist` checks such citations later.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import psycopg
from langchain_core.embeddings import Embeddings

from ..errors import ConfigurationError, EmbeddingModelMismatch, ValidationFailed
from . import store
from .embedders import embedding_model

RRF_K = 60
TEXT_WEIGHT = 1.0  # the full-text list's weight in the fusion (the vector list's is 1)
MIN_CANDIDATES = 40
EF_SEARCH = 200  # recall@10 of the vector part ≈ 0.96 at 100,000 chunks (bench/README.md)
MAX_K = 100
TEXT_MATCH_BUDGET = 3000  # chunks the full-text part may rank, at most (see text_query)
ITERATIVE_SCAN_SINCE = (0, 8)  # the pgvector version that added hnsw.iterative_scan

log = logging.getLogger("proposalflow.knowledge")
_warned_versions: set[str] = set()


@dataclass(frozen=True)
class Passage:
    chunk_id: int
    document_id: str
    title: str
    source_uri: str
    category: str | None
    text: str
    score: float


_HYBRID = """
WITH vector_hits AS MATERIALIZED (
    SELECT id, {distance} AS distance
      FROM knowledge_chunks
     {vector_filter}
     ORDER BY {distance}
     LIMIT %(n)s
), vector_ranked AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM vector_hits
), text_query AS (
    -- the question's rarest words, while the chunks they occur in add up to at most the budget
    SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery AS q
      FROM (SELECT w.lexeme, sum(coalesce(t.chunks, 0)) OVER (ORDER BY coalesce(t.chunks, 0), w.lexeme) AS cumulative
              FROM unnest(to_tsvector('english', %(query)s)) w
              LEFT JOIN knowledge_terms t ON t.lexeme = w.lexeme) words
     WHERE cumulative <= %(budget)s
), text_ranked AS (
    SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS rank
      FROM (SELECT c.id, ts_rank(c.tsv, t.q) AS rank
              FROM knowledge_chunks c, text_query t
             WHERE t.q IS NOT NULL AND c.tsv @@ t.q
               {text_filter}
             ORDER BY rank DESC, c.id
             LIMIT %(n)s) best
), fused AS (
    SELECT id, sum(weight / (%(rrf_k)s + rank)) AS score
      FROM (SELECT id, rank, 1.0 AS weight FROM vector_ranked
            UNION ALL SELECT id, rank, %(text_weight)s::numeric FROM text_ranked) both_lists
     GROUP BY id
)
SELECT c.id, d.id::text, coalesce(d.title, d.source_uri), d.source_uri, c.category, c.text, f.score::float8
  FROM fused f
  JOIN knowledge_chunks c ON c.id = f.id
  JOIN knowledge_base d ON d.id = c.document_id
 ORDER BY f.score DESC, c.id
 LIMIT %(k)s
"""


def search(conn: psycopg.Connection, embedder: Embeddings, query: str, k: int = 5,
           category: str | None = None) -> list[Passage]:
    """The `k` best passages for `query` (optionally within one category), best first."""
    query = (query or "").strip()
    if not query:
        raise ValidationFailed("the search query is empty", [{"field": "query", "message": "must not be empty"}])
    if not 1 <= k <= MAX_K:
        raise ValidationFailed(f"k must be between 1 and {MAX_K}", [{"field": "k", "message": f"got {k}"}])
    model = embedding_model(embedder)
    vector = np.asarray(embedder.embed_query(query), dtype=np.float32)
    _ensure_vector_type(conn)
    literal = store.vector_expression(model.dimension)
    cast = f"::halfvec({model.dimension})" if literal != "embedding" else f"::vector({model.dimension})"
    candidates = max(MIN_CANDIDATES, 4 * k)
    sql = _HYBRID.format(distance=f"{literal} <=> %(vector)s{cast}",
                         vector_filter="WHERE category = %(category)s" if category is not None else "",
                         text_filter="AND c.category = %(category)s" if category is not None else "")
    settings = "SELECT set_config('hnsw.ef_search', %s, true)"
    if category is not None:  # + the pgvector version, to tell whether iterative scans exist (same round trip)
        settings += (", set_config('hnsw.iterative_scan', 'relaxed_order', true),"
                     " (SELECT extversion FROM pg_extension WHERE extname = 'vector')")
    # one network round trip: the recorded model, the transaction-local settings and the query
    # (not through a transaction-mode pooler such as Supabase's port 6543, which may not pipeline)
    pipeline = nullcontext() if _behind_transaction_pooler(conn) else conn.pipeline()
    try:
        with pipeline, conn.transaction():
            recorded = conn.execute("SELECT provider, model, dimension FROM knowledge_embedding_model")
            applied = conn.execute(settings, (str(max(EF_SEARCH, candidates)),))
            found = conn.execute(sql, {"vector": vector, "query": query, "category": category, "n": candidates,
                                       "k": k, "rrf_k": RRF_K, "budget": TEXT_MATCH_BUDGET,
                                       "text_weight": TEXT_WEIGHT})
        rows, row = found.fetchall(), recorded.fetchone()
    except psycopg.errors.DataException:  # e.g. vectors of another length in the table
        store.check_model(conn, model)  # raises the clear mismatch message
        raise
    except psycopg.errors.InvalidName as exc:  # a pgvector that reserves "hnsw." but lacks iterative_scan
        raise ConfigurationError(f"searching within a category needs pgvector >= 0.8 (hnsw.iterative_scan): "
                                 f"{exc}. Upgrade the extension: ALTER EXTENSION vector UPDATE") from exc
    if category is not None:
        check_iterative_scan(applied.fetchone()[-1])
    if row is None:
        return []  # nothing was ever embedded
    if (row[1], row[2]) != (model.name, model.dimension):
        raise EmbeddingModelMismatch(store.mismatch_message(store.EmbeddingModel(*row), model))
    return [Passage(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6])) for r in rows]


def check_iterative_scan(pgvector_version: str | None) -> bool:
    """Whether this pgvector has `hnsw.iterative_scan` (0.8+); if not, warns once per version that
    category-filtered searches may return fewer passages than asked for."""
    try:
        supported = tuple(int(p) for p in (pgvector_version or "").split(".")[:2]) >= ITERATIVE_SCAN_SINCE
    except ValueError:
        supported = True  # a version string we cannot read: assume a current one
    if not supported and pgvector_version not in _warned_versions:
        _warned_versions.add(str(pgvector_version))
        log.warning("pgvector %s has no hnsw.iterative_scan (needs >= 0.8): searches within a category may "
                    "return fewer passages than asked for. Upgrade: ALTER EXTENSION vector UPDATE",
                    pgvector_version)
    return supported


def _behind_transaction_pooler(conn: psycopg.Connection) -> bool:
    return conn.info.port == 6543 or "pooler.supabase.com" in (conn.info.host or "")


def _ensure_vector_type(conn: psycopg.Connection) -> None:
    """pgvector's binary adapters, once per connection (registering costs four catalog queries)."""
    if conn.adapters.types.get("vector") is None:
        from pgvector.psycopg import register_vector

        register_vector(conn)


def chunks_exist(conn: psycopg.Connection, chunk_ids: Iterable[int]) -> set[int]:
    """Which of these chunk ids exist now (for checking a proposal's citations)."""
    ids = sorted({int(i) for i in chunk_ids})
    if not ids:
        return set()
    return {r[0] for r in conn.execute("SELECT id FROM knowledge_chunks WHERE id = ANY(%s)", (ids,)).fetchall()}
