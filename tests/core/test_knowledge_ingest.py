"""Embedding knowledge into PostgreSQL: incremental, atomic per document, failures isolated."""

from pathlib import Path

import numpy as np
import pytest

from proposalflow.errors import EmbeddingModelMismatch, SourceUnreadable
from proposalflow.knowledge import store
from proposalflow.knowledge.chunking import ChunkSettings
from proposalflow.knowledge.documents import Document, file_uri, folder_prefix, folder_sources
from proposalflow.knowledge.embedders import WordLlamaEmbeddings, embedding_model, make_embedder
from proposalflow.knowledge.ingest import add_documents, add_file, embed_documents, reembed
from proposalflow.knowledge.search import chunks_exist, search
from proposalflow.settings import Settings


class OtherModel(WordLlamaEmbeddings):
    """The same vectors under another name and length: what a model change looks like to the store."""

    model_name = "other-model"
    dimension = 128

    def embed_array(self, texts):
        return super().embed_array(texts)[:, :128]


@pytest.fixture
def embedder():
    return make_embedder(Settings(_env_file=None))


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "kb"
    (root / "services").mkdir(parents=True)
    (root / "pricing").mkdir()
    (root / "services" / "seo.md").write_text("# SEO\n\nTechnical SEO audits and local SEO for clinics.\n")
    (root / "services" / "ads.md").write_text("# Paid ads\n\nGoogle Ads and LinkedIn campaigns.\n")
    (root / "pricing" / "rates.md").write_text("# Rates\n\nPaid ads management is 15% of spend.\n")
    return root


def chunk_rows(db):
    return db.execute("""SELECT d.source_uri, c.id, c.position FROM knowledge_chunks c
                          JOIN knowledge_base d ON d.id = c.document_id ORDER BY 1, 3""").fetchall()


def test_second_run_embeds_nothing_and_keeps_chunk_ids(db, embedder, folder):
    first = add_documents(db, embedder, folder_sources(folder))
    assert (first.documents, first.embedded, first.unchanged, first.failed) == (3, 3, 0, 0)
    assert first.chunks == 3
    before = chunk_rows(db)
    second = add_documents(db, embedder, folder_sources(folder))
    assert (second.embedded, second.chunks, second.unchanged) == (0, 0, 3)
    assert chunk_rows(db) == before
    model = store.recorded_model(db)
    assert (model.name, model.dimension) == ("wordllama/l2_supercat-256", 256)
    assert db.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                      "WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding'").fetchone()[0] == "vector(256)"
    indexdef = db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (store.HNSW_INDEX,)).fetchone()[0]
    assert "hnsw" in indexdef and "vector_cosine_ops" in indexdef


def test_a_changed_document_replaces_its_chunks_and_leaves_the_others(db, embedder, folder):
    add_documents(db, embedder, folder_sources(folder))
    seo = folder / "services" / "seo.md"
    # other chunk settings make every document stale once
    assert add_documents(db, embedder, folder_sources(folder), chunk_settings=ChunkSettings(400, 50)).embedded == 3
    assert add_documents(db, embedder, folder_sources(folder)).embedded == 3
    before = {uri: cid for uri, cid, _ in chunk_rows(db)}
    seo.write_text("# SEO\n\nOnly local SEO now.\n")
    summary = add_documents(db, embedder, folder_sources(folder))
    assert (summary.embedded, summary.unchanged, summary.chunks) == (1, 2, 1)
    after = chunk_rows(db)
    assert [(uri, pos) for uri, _, pos in after if uri == file_uri(seo)] == [(file_uri(seo), 0)]
    for uri, cid, _ in after:
        if uri != file_uri(seo):
            assert before[uri] == cid  # unchanged documents keep their chunk ids (proposals cite them)
    text = db.execute("SELECT c.text FROM knowledge_chunks c JOIN knowledge_base d ON d.id = c.document_id "
                      "WHERE d.source_uri = %s", (file_uri(seo),)).fetchone()[0]
    assert text == "SEO\n\nOnly local SEO now."


def test_prune_deletes_documents_whose_file_is_gone(db, embedder, folder):
    add_documents(db, embedder, folder_sources(folder))
    (folder / "services" / "ads.md").unlink()
    summary = add_documents(db, embedder, folder_sources(folder))
    pruned = store.prune_documents(db, [folder_prefix(folder)], summary.seen)
    assert pruned == [file_uri(folder / "services" / "ads.md")]
    assert db.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 2
    assert {uri for uri, _, _ in chunk_rows(db)} == {file_uri(folder / "services" / "seo.md"),
                                                    file_uri(folder / "pricing" / "rates.md")}


def test_a_corrupt_file_is_recorded_and_the_others_are_embedded(db, embedder, folder):
    (folder / "pricing" / "broken.pdf").write_bytes(b"%PDF-1.7\n\x00\x01 this is not a pdf")
    summary = add_documents(db, embedder, folder_sources(folder))
    assert (summary.embedded, summary.failed) == (3, 1)
    uri, reason = db.execute("SELECT source_uri, reason FROM knowledge_failures").fetchone()
    assert uri == file_uri(folder / "pricing" / "broken.pdf") and "broken.pdf: not a readable pdf" in reason
    (folder / "pricing" / "broken.pdf").write_text("now it is text")
    (folder / "pricing" / "broken.pdf").rename(folder / "pricing" / "fixed.md")
    summary = add_documents(db, embedder, folder_sources(folder))
    store.prune_documents(db, [folder_prefix(folder)], summary.seen)
    assert db.execute("SELECT count(*) FROM knowledge_failures").fetchone()[0] == 0


def test_another_model_is_refused_naming_the_reembed_command(db, embedder, folder):
    add_documents(db, embedder, folder_sources(folder))
    other = OtherModel()
    with pytest.raises(EmbeddingModelMismatch) as caught:
        add_documents(db, other, folder_sources(folder))
    assert "proposalflow kb reembed" in str(caught.value) and "other-model" in str(caught.value)
    with pytest.raises(EmbeddingModelMismatch):
        search(db, other, "seo")
    assert db.execute("SELECT count(*) FROM knowledge_chunks").fetchone()[0] == 3  # nothing touched


def test_reembed_switches_the_model_from_the_stored_text(db, embedder, folder):
    add_documents(db, embedder, folder_sources(folder))
    other = OtherModel()
    summary = reembed(db, other)
    assert (summary.embedded, summary.chunks) == (3, 3)
    model = store.recorded_model(db)
    assert (model.name, model.dimension) == ("other-model", 128)
    assert search(db, other, "paid ads management fee", k=1)[0].source_uri == file_uri(folder / "pricing" / "rates.md")
    assert db.execute("SELECT to_regclass(%s) IS NOT NULL", (store.HNSW_INDEX,)).fetchone()[0]
    assert reembed(db, other).embedded == 0  # nothing stale any more
    with pytest.raises(EmbeddingModelMismatch):
        add_documents(db, embedder, folder_sources(folder))


def test_add_file_is_one_upload_replaced_by_its_next_version(db, embedder, tmp_path):
    upload = tmp_path / "upload-1234.md"
    upload.write_text("# Team\n\nDana Whitfield founded the agency.")
    first = add_file(db, embedder, upload, category="team", source_uri="upload://team.md")
    assert (first.status, first.chunks, first.category, first.title) == ("embedded", 1, "team", "Team")
    assert add_file(db, embedder, upload, category="team", source_uri="upload://team.md").status == "unchanged"
    upload.write_text("# Team\n\nDana Whitfield and Marcus Oyelaran lead the agency.")
    third = add_file(db, embedder, upload, category="team", source_uri="upload://team.md")
    assert third.status == "embedded" and third.document_id == first.document_id
    hit = search(db, embedder, "Marcus Oyelaran", k=1)[0]
    assert (hit.source_uri, hit.category) == ("upload://team.md", "team") and "Marcus" in hit.text
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"not a docx")
    with pytest.raises(SourceUnreadable, match="bad.docx"):
        add_file(db, embedder, bad)


def test_chunks_exist_answers_for_citations(db, embedder, folder):
    add_documents(db, embedder, folder_sources(folder))
    ids = [cid for _, cid, _ in chunk_rows(db)]
    assert chunks_exist(db, ids + [10**9]) == set(ids)
    assert chunks_exist(db, []) == set()


def test_a_category_filter_returns_k_results_where_the_hnsw_scan_alone_would_come_back_short(db, embedder, caplog):
    """pgvector filters AFTER the HNSW scan: of the ef_search nearest chunks, only those in the
    category survive. Here none do — the category's chunks are all far from the question — so
    without `hnsw.iterative_scan` the vector part comes back empty; search() must still return k."""
    from proposalflow.knowledge import search as search_module
    from proposalflow.knowledge.chunking import Chunk

    query, k = "seo ads crm", 10
    toward = np.asarray(embedder.embed_query(query), dtype=np.float32)
    rng = np.random.default_rng(7)

    def unit(vectors):
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def noise(n):
        return unit(rng.standard_normal((n, 256)))

    common, rare = 3000, 40
    documents = [
        store.EmbeddedDocument(Document("mem://common", "Common", "common", "common"),
                               [Chunk(i, "Common", f"seo ads crm note {i}") for i in range(common)],
                               unit(toward + 0.5 * noise(common))),  # all near the question
        store.EmbeddedDocument(Document("mem://rare", "Rare", "rare", "rare"),
                               [Chunk(i, "Rare", f"rare topic number {i} about audits") for i in range(rare)],
                               noise(rare)),  # far from it, and no word of it in their text
    ]
    model = embedding_model(embedder)
    store.bind_model(db, model, indexes=False)
    store.write_documents(db, documents, "test")
    store.bind_model(db, model)  # builds the HNSW index over the 3,040 chunks
    db.execute("ANALYZE knowledge_chunks")
    # A category this rare would be planned through its btree index + an exact sort. Forbid
    # sorts in this session, so the filtered ORDER BY … LIMIT goes through the HNSW index — the
    # plan a larger category gets on its own.
    db.execute("SET enable_sort = off")

    sql = search_module._HYBRID.format(distance="embedding <=> %(vector)s::vector(256)",
                                       vector_filter="WHERE category = %(category)s",
                                       text_filter="AND c.category = %(category)s")
    params = {"vector": str(toward.tolist()), "query": query, "category": "rare", "n": 4 * k, "k": k,
              "rrf_k": search_module.RRF_K, "budget": search_module.TEXT_MATCH_BUDGET, "text_weight": 1.0}

    def run(iterative_scan: str) -> tuple[str, int]:
        with db.transaction():
            db.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true)",
                       (str(search_module.EF_SEARCH), iterative_scan))
            plan = "\n".join(r[0] for r in db.execute("EXPLAIN " + sql, params).fetchall())
            return plan, len(db.execute(sql, params).fetchall())

    plan, without = run("off")
    assert store.HNSW_INDEX in plan and "Filter: (category = 'rare'" in plan, plan  # filtered HNSW scan
    assert without < k  # the same SQL without iterative scan comes back short (here: empty)
    assert run("relaxed_order")[1] == k
    with caplog.at_level("WARNING", logger="proposalflow.knowledge"):
        results = search(db, embedder, query, k=k, category="rare")
    assert len(results) == k and {p.category for p in results} == {"rare"}
    assert not caplog.records  # this pgvector has iterative scans: nothing to warn about
    assert len(search(db, embedder, query, k=k)) == k


def test_an_old_pgvector_without_iterative_scans_is_named_in_a_warning(caplog):
    from proposalflow.knowledge.search import check_iterative_scan

    with caplog.at_level("WARNING", logger="proposalflow.knowledge"):
        assert check_iterative_scan("0.8.0") and check_iterative_scan("0.10.1")
        assert not caplog.records
        assert not check_iterative_scan("0.7.4")
        assert not check_iterative_scan("0.7.4")  # warned once
    (record,) = caplog.records
    assert "pgvector 0.7.4" in record.getMessage() and ">= 0.8" in record.getMessage()


def test_search_refuses_an_empty_query_and_finds_nothing_in_an_empty_base(db, embedder):
    from proposalflow.errors import ValidationFailed

    assert search(db, embedder, "anything") == []
    with pytest.raises(ValidationFailed):
        search(db, embedder, "   ")


def test_an_interrupted_reembed_continues_with_the_documents_still_stale(db, embedder, folder):
    from proposalflow.knowledge.ingest import reembed_batch

    add_documents(db, embedder, folder_sources(folder))
    other = OtherModel()
    store.start_reembedding(db, embedding_model(other))
    after, done = reembed_batch(db, other, ChunkSettings(), after="", limit=1)  # then the process died
    assert done.embedded == 1
    rest = reembed(db, other)
    assert (rest.embedded, rest.chunks) == (2, 2)  # not 3: the finished one is not embedded again
    assert db.execute("SELECT count(*), count(DISTINCT document_id) FROM knowledge_chunks").fetchone() == (3, 3)


def test_a_reader_sees_a_rewritten_document_whole_old_or_whole_new_never_part(db, db_url, embedder):
    """One thread rewrites a ~50-chunk document through the core write path, alternating two versions
    of different lengths; another counts its chunks on its own connection meanwhile."""
    import threading

    import psycopg

    def version(sections: int, tag: str) -> Document:
        body = "\n\n".join(f"## Section {i}\n\n{tag} paragraph {i} about local SEO audits." for i in range(sections))
        return Document("mem://handbook", "Handbook", "services", f"# Handbook\n\n{body}")

    versions = [version(50, "first"), version(44, "second")]
    settings = ChunkSettings()
    store.bind_model(db, embedding_model(embedder))
    first = embed_documents(db, embedder, [versions[0]], settings)
    full_counts = {first.chunks, embed_documents(db, embedder, [versions[1]], settings).chunks}
    assert full_counts == {50, 44}
    document_id = db.execute("SELECT id FROM knowledge_base WHERE source_uri = 'mem://handbook'").fetchone()[0]
    rewrites, done, seen, errors = 60, threading.Event(), [], []

    def writer():
        try:
            with psycopg.connect(db_url, autocommit=True) as conn:
                for i in range(rewrites):
                    embed_documents(conn, embedder, [versions[i % 2]], settings)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    with psycopg.connect(db_url, autocommit=True) as reader:
        thread.start()
        while not done.is_set():
            seen.append(reader.execute("SELECT count(*) FROM knowledge_chunks WHERE document_id = %s",
                                       (document_id,)).fetchone()[0])
    thread.join()
    assert not errors, errors
    assert len(seen) >= rewrites  # the reader did look while the writer rewrote
    assert set(seen) <= full_counts, sorted(set(seen) - full_counts)
    assert set(seen) == full_counts  # and saw both versions come and go
