"""Knowledge-base benchmark, in one run on the same database server:

    .venv/bin/python bench/knowledge.py [--documents 5000] [--queries 200]

1. storing 50,000 chunks with precomputed embeddings into an empty knowledge base: this project
   (what add_documents and the flow do on a first load: store.write_documents — one INSERT … ON
   CONFLICT per batch of documents + binary COPY of their chunks, the generated tsvector computed
   by PostgreSQL — then the HNSW and GIN indexes built once, and the term statistics) vs
   langchain-postgres's PGVectorStore.add_embeddings into its own table (which has no vector
   index and no full-text column: it is given that advantage);
2. the whole pipeline (read files → normalise → hash → chunk → embed locally → write) over
   100,000 chunks, first run vs a second run over the unchanged corpus, and its peak RSS
   (DESIGN.md: embedding 100,000 chunks stays under 1.5 GB);
3. the local embedder's throughput (chunks/s);
4. hybrid top-10 query latency (p50/p95, query embedding included) over the pipeline's 100,000
   chunks, and the
   recall@10 of the vector part (HNSW at search.EF_SEARCH) against exact search (numpy, all vectors).

The corpus is synthetic but embedding-like: documents written from the sentences of the sample
knowledge folder (words shuffled and swapped), embedded by the real local model — not uniform
random vectors. Each phase runs in its own subprocess, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SAMPLE = REPO / "proposalflow" / "data" / "knowledge"
CHUNKS_PER_DOCUMENT = 10


# --- the corpus -----------------------------------------------------------------------------------
def sentences_and_words() -> tuple[list[str], list[str]]:
    text = " ".join(p.read_text() for p in SAMPLE.rglob("*") if p.is_file())
    text = re.sub(r"<[^>]+>|^---.*?---|[#*|`>]", " ", text, flags=re.S | re.M)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s.split()) >= 5]
    words = sorted({w.lower() for w in re.findall(r"[A-Za-z][A-Za-z-]{2,}", text)})
    return sentences, words


def write_corpus(folder: Path, documents: int, seed: int = 7, prefix: str = "") -> None:
    """`documents` Markdown files in 6 category folders; each has 10 sections of ~900 characters,
    so that it is cut into 10 chunks of the default size (1,200 characters)."""
    rng = random.Random(seed)
    sentences, words = sentences_and_words()
    categories = ["services", "case-studies", "pricing", "team", "past-proposals", "notes"]
    for category in categories:
        (folder / category).mkdir(parents=True, exist_ok=True)
    for i in range(documents):
        topic = " ".join(rng.sample(words, 3))
        parts = [f"# Document {i}: {topic}\n"]
        for j in range(CHUNKS_PER_DOCUMENT):
            body: list[str] = []
            while sum(len(s) + 1 for s in body) < 850:
                tokens = rng.choice(sentences).split()
                for _ in range(max(1, len(tokens) // 4)):  # swap a quarter of the words
                    tokens[rng.randrange(len(tokens))] = rng.choice(words)
                body.append(" ".join(tokens))
            parts.append(f"## Section {j}: {' '.join(rng.sample(words, 2))}\n\n{' '.join(body)}\n")
        (folder / categories[i % len(categories)] / f"{prefix}doc-{i:05d}.md").write_text("\n".join(parts))


def query_texts(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    sentences, words = sentences_and_words()
    queries = []
    for _ in range(count):
        tokens = rng.choice(sentences).split()
        keep = rng.sample(tokens, min(len(tokens), rng.randint(4, 9)))
        queries.append(" ".join(keep + [rng.choice(words)]))
    return queries


# --- phases (each in a child process) ---------------------------------------------------------------
def phase_pipeline(url: str, folder: str) -> dict:
    """The project's pipeline over the folder (what the flow's tasks run): two runs."""
    import psycopg

    from proposalflow.knowledge.documents import folder_sources
    from proposalflow.knowledge.embedders import make_embedder
    from proposalflow.settings import Settings
    from proposalflow.knowledge.ingest import add_documents

    embedder = make_embedder(Settings(_env_file=None))
    embedder.embed_query("warm up")  # loading the model (~0.5 s) is start-up, not per-document work
    runs = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(2):
            started = time.perf_counter()
            summary = add_documents(conn, embedder, folder_sources(folder))
            runs.append({"seconds": time.perf_counter() - started, "embedded": summary.embedded,
                         "unchanged": summary.unchanged, "chunks": summary.chunks})
    return {"first": runs[0], "second": runs[1]}


def phase_embed(folder: str, out: str) -> dict:
    """Chunk the corpus and embed every chunk with the local model: throughput, and the vectors."""
    import numpy as np

    from proposalflow.knowledge.chunking import ChunkSettings, chunk_document
    from proposalflow.knowledge.documents import folder_sources, read_source
    from proposalflow.knowledge.embedders import WordLlamaEmbeddings

    records = []
    for source in folder_sources(folder):
        document = read_source(source)
        for chunk in chunk_document(document.title, document.text, ChunkSettings()):
            records.append((document.source_uri, document.title, document.category, chunk.position, chunk.heading,
                            chunk.text))
    embedder = WordLlamaEmbeddings()
    embedder.embed_query("warm up")
    texts = [r[5] for r in records]
    started = time.perf_counter()
    vectors = np.concatenate([embedder.embed_array(texts[i:i + 512]) for i in range(0, len(texts), 512)])
    seconds = time.perf_counter() - started
    np.save(out + ".npy", vectors)
    with open(out + ".jsonl", "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    return {"chunks": len(texts), "seconds": seconds, "chunks_per_second": len(texts) / seconds,
            "mean_chars": sum(map(len, texts)) / len(texts)}


def load_precomputed(out: str, limit: int):
    import numpy as np

    vectors = np.load(out + ".npy", mmap_mode="r")[:limit]
    with open(out + ".jsonl") as fh:
        records = [json.loads(line) for _, line in zip(range(limit), fh)]
    return records, np.asarray(vectors)


def phase_store_project(url: str, out: str, chunks: int) -> dict:
    import psycopg

    from proposalflow.knowledge import store
    from proposalflow.knowledge.chunking import Chunk
    from proposalflow.knowledge.documents import Document
    from proposalflow.knowledge.embedders import EmbeddingModel, WORDLLAMA_MODEL

    records, vectors = load_precomputed(out, chunks)
    by_document: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_document.setdefault(r[0], []).append(i)
    embedded = []
    for uri, rows in by_document.items():
        first = records[rows[0]]
        document = Document(uri, first[1], first[2], "(text)", {})
        embedded.append(store.EmbeddedDocument(document, [Chunk(records[i][3], records[i][4], records[i][5])
                                                          for i in rows], vectors[rows]))
    model = EmbeddingModel("local", WORDLLAMA_MODEL, 256)
    with psycopg.connect(url, autocommit=True) as conn:
        store.bind_model(conn, model, indexes=False)
        started = time.perf_counter()
        deferred = store.defer_indexes_if_empty(conn)  # what add_documents / the flow do on a first load
        for start in range(0, len(embedded), 100):  # 100 documents = 1,000 chunks per transaction
            store.write_documents(conn, embedded[start:start + 100], "bench")
        copied = time.perf_counter()
        store.bind_model(conn, model)  # builds the HNSW and GIN indexes
        indexed = time.perf_counter()
        store.refresh_terms(conn)
        finished = time.perf_counter()
        stored = conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
    return {"seconds": finished - started, "copy_seconds": copied - started, "index_seconds": indexed - copied,
            "terms_seconds": finished - indexed, "deferred": deferred, "chunks": len(records), "stored": stored}


def phase_store_langchain(url: str, out: str, chunks: int) -> dict:
    from langchain_core.embeddings import FakeEmbeddings
    from langchain_postgres import PGEngine, PGVectorStore

    import psycopg

    records, vectors = load_precomputed(out, chunks)
    with psycopg.connect(url, autocommit=True) as conn:  # the same index-build memory as the project's
        conn.execute(f"ALTER DATABASE {urlsplit(url).path.lstrip('/')} SET maintenance_work_mem = '512MB'")
    engine = PGEngine.from_connection_string(url.replace("postgresql://", "postgresql+psycopg://", 1))
    engine.init_vectorstore_table("langchain_chunks", vector_size=256)
    vector_store = PGVectorStore.create_sync(engine, embedding_service=FakeEmbeddings(size=256),
                                             table_name="langchain_chunks")
    texts = [r[5] for r in records]
    metadatas = [{"source_uri": r[0], "title": r[1], "category": r[2], "position": r[3]} for r in records]
    embeddings = vectors.tolist()
    started = time.perf_counter()
    for start in range(0, len(texts), 1000):
        vector_store.add_embeddings(texts[start:start + 1000], embeddings[start:start + 1000],
                                    metadatas[start:start + 1000])
    seconds = time.perf_counter() - started
    from langchain_postgres.v2.indexes import HNSWIndex

    started = time.perf_counter()  # equal work: the same HNSW index as the project's, built once after the load
    vector_store.apply_vector_index(HNSWIndex(m=16, ef_construction=128))
    index_seconds = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*) FROM langchain_chunks").fetchone()[0]
    return {"seconds": seconds, "index_seconds": index_seconds, "chunks": len(texts), "stored": stored}


def phase_query(url: str, queries: int) -> dict:
    import numpy as np
    import psycopg
    from pgvector.psycopg import register_vector

    from proposalflow.knowledge.embedders import WordLlamaEmbeddings
    from proposalflow.knowledge.search import EF_SEARCH, search

    embedder = WordLlamaEmbeddings()
    texts = query_texts(queries)
    with psycopg.connect(url, autocommit=True) as conn:
        register_vector(conn)
        total = conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0]
        for text in texts[:10]:  # warm the caches
            search(conn, embedder, text, k=10)
        latencies = []
        for text in texts:
            started = time.perf_counter()
            search(conn, embedder, text, k=10)
            latencies.append((time.perf_counter() - started) * 1000)
        ids, matrix = [], []
        with conn.cursor().copy("COPY (SELECT id, embedding FROM knowledge_chunks) TO STDOUT (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "vector"])
            for chunk_id, vector in copy.rows():
                ids.append(chunk_id)
                matrix.append(vector)
        ids, matrix = np.array(ids), np.asarray(matrix, dtype=np.float32)
        hits = 0
        for text in texts:
            q = embedder.embed_array([text])[0]
            exact = set(ids[np.argsort(-(matrix @ q))[:10]].tolist())
            with conn.transaction():
                conn.execute(f"SET LOCAL hnsw.ef_search = {EF_SEARCH}")
                found = {r[0] for r in conn.execute(
                    "SELECT id FROM knowledge_chunks ORDER BY embedding <=> %s::vector(256) LIMIT 10", (q,))}
            hits += len(exact & found)
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT id FROM knowledge_chunks ORDER BY embedding <=> %s::vector(256) LIMIT 10", (q,)))
    return {"chunks": total, "queries": len(texts), "p50_ms": float(np.percentile(latencies, 50)),
            "p95_ms": float(np.percentile(latencies, 95)), "recall_at_10": hits / (10 * len(texts)),
            "uses_hnsw": "knowledge_chunks_embedding_hnsw" in plan}


PHASES = {"pipeline": phase_pipeline, "embed": phase_embed, "store-project": phase_store_project,
          "store-langchain": phase_store_langchain, "query": phase_query}


def child(name: str, args: list[str]) -> None:
    params = [int(a) if a.isdigit() else a for a in args]
    result = PHASES[name](*params)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(name: str, *args) -> dict:
    print(f"running {name} …", file=sys.stderr, flush=True)
    out = subprocess.run([sys.executable, __file__, "--child", name, *map(str, args)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_database(admin_url: str) -> str:
    import psycopg

    from proposalflow.migrations import migrate

    name = f"pf_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=5000, help="10 chunks each (default: 50,000 chunks)")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    chunks = args.documents * CHUNKS_PER_DOCUMENT

    workdir = Path(tempfile.mkdtemp(prefix="pfk-", dir="/tmp"))
    home = None
    try:
        admin_url = os.environ.get("DATABASE_URL")
        if not admin_url:
            from proposalflow.embedded import embedded_database_url

            home = workdir / "h"
            admin_url = embedded_database_url(home)
        # two different corpora of `documents` each in one folder: 2 × 50,000 chunks by default
        folder = workdir / "corpus"
        t = time.perf_counter()
        write_corpus(folder, args.documents)
        write_corpus(folder, args.documents, seed=8, prefix="b-")
        size = sum(p.stat().st_size for p in folder.rglob("*.md"))
        print(f"{2 * args.documents:,} documents, {size / 1e6:.1f} MB written in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)
        vectors = str(workdir / "vectors")

        embed = run_child("embed", str(folder), vectors)
        store_db = fresh_database(admin_url)  # storing: 50,000 of the precomputed chunks
        ours = run_child("store-project", store_db, vectors, chunks)
        theirs = run_child("store-langchain", store_db, vectors, chunks)
        pipeline_db = fresh_database(admin_url)  # the whole pipeline over all 100,000 chunks, then queries
        pipeline = run_child("pipeline", pipeline_db, str(folder))
        query = run_child("query", pipeline_db, args.queries)

        first, second = pipeline["first"], pipeline["second"]
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", file=sys.stderr)
        print(f"\nknowledge base, {chunks:,} chunks of ~{embed['mean_chars']:.0f} characters, 256-d (one run, same server)\n")
        print(f"{'storing precomputed embeddings':<52} {'seconds':>8} {'chunks/s':>9} {'peak RSS':>9}")
        for label, r in [("project: upsert + binary COPY, then HNSW + GIN built", ours),
                         ("langchain-postgres PGVectorStore.add_embeddings", theirs)]:
            print(f"{label:<52} {r['seconds']:8.2f} {r['chunks'] / r['seconds']:9,.0f} {r['peak_rss_mb']:6.0f} MB")
        both = theirs["seconds"] + theirs["index_seconds"]
        print(f"{'  … + the same HNSW index (apply_vector_index)':<52} {both:8.2f} {theirs['chunks'] / both:9,.0f}")
        print(f"  project split: COPY {ours['copy_seconds']:.2f} s, indexes {ours['index_seconds']:.2f} s, "
              f"term statistics {ours['terms_seconds']:.2f} s")
        print(f"→ PGVectorStore / project = {theirs['seconds'] / ours['seconds']:.1f}× (target ≥ 5×); with the same "
              f"HNSW index on both: {both / ours['seconds']:.1f}×; rows alone (their inserts / our COPY): "
              f"{theirs['seconds'] / ours['copy_seconds']:.1f}×\n")
        print(f"pipeline first run (read, chunk, embed, write): {first['seconds']:.2f} s, {first['chunks']:,} chunks, "
              f"peak RSS {pipeline['peak_rss_mb']:.0f} MB")
        print(f"pipeline second run (unchanged): {second['seconds']:.2f} s, embedded {second['embedded']}, "
              f"= {100 * second['seconds'] / first['seconds']:.1f}% of the first (target ≤ 5%)")
        print(f"local embedder (WordLlama 256-d): {embed['chunks_per_second']:,.0f} chunks/s "
              f"({embed['chunks']:,} chunks in {embed['seconds']:.1f} s, peak RSS {embed['peak_rss_mb']:.0f} MB)")
        print(f"hybrid top-10 at {query['chunks']:,} chunks: p50 {query['p50_ms']:.1f} ms, p95 {query['p95_ms']:.1f} ms "
              f"(target p50 ≤ 20 ms); vector recall@10 vs exact {query['recall_at_10']:.3f} (target ≥ 0.95); "
              f"HNSW used: {query['uses_hnsw']}")
    finally:
        if home is not None:
            from proposalflow.embedded import stop_embedded_server

            stop_embedded_server(home)
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
    else:
        main()
