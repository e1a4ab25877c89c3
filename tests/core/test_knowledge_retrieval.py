"""Retrieval quality over the sample knowledge folder shipped with the package, offline."""

from importlib import resources
from pathlib import Path

import pytest

from proposalflow.knowledge.documents import file_uri, folder_sources
from proposalflow.knowledge.embedders import make_embedder
from proposalflow.knowledge.ingest import add_documents
from proposalflow.knowledge.search import search
from proposalflow.settings import Settings
from tests.core.knowledge_queries import LABELLED_QUERIES

SAMPLE = Path(str(resources.files("proposalflow") / "data" / "knowledge"))


@pytest.fixture
def sample_db(db):
    embedder = make_embedder(Settings(_env_file=None))
    summary = add_documents(db, embedder, folder_sources(SAMPLE))
    assert summary.failed == 0 and summary.embedded >= 15
    return db, embedder


def test_the_sample_corpus_is_a_real_knowledge_base():
    documents = list(folder_sources(SAMPLE))
    categories = {s.folder_category for s in documents}
    assert len(documents) >= 15
    assert {"services", "case-studies", "pricing", "team"} <= categories


def test_recall_at_5_over_labelled_queries(sample_db):
    db, embedder = sample_db
    assert len(LABELLED_QUERIES) >= 20
    misses = []
    for question, expected in LABELLED_QUERIES:
        found = [p.source_uri for p in search(db, embedder, question, k=5)]
        if file_uri(SAMPLE / expected) not in found:
            misses.append((question, expected, found))
    recall = 1 - len(misses) / len(LABELLED_QUERIES)
    assert recall >= 0.9, misses


def test_passages_carry_what_a_citation_needs(sample_db):
    db, embedder = sample_db
    passages = search(db, embedder, "minimum fee for paid ads management", k=3, category="pricing")
    assert passages and all(p.category == "pricing" for p in passages)
    best = passages[0]
    assert best.title == "Monthly retainer packages" and "$1,500" in best.text
    assert best.source_uri == file_uri(SAMPLE / "pricing" / "retainer-packages.md")
    assert isinstance(best.chunk_id, int) and len(best.document_id) == 36
    assert [p.score for p in passages] == sorted((p.score for p in passages), reverse=True)


def test_the_full_text_part_keeps_the_rare_words_and_drops_the_ones_over_the_budget(db):
    """A word in more chunks than TEXT_MATCH_BUDGET is left out of the full-text part (ranking all its
    chunks would cost more than it tells); a rare word of the same question still finds the chunk
    that only full-text can find."""
    import numpy as np

    from proposalflow.knowledge import store
    from proposalflow.knowledge.embedders import embedding_model
    from proposalflow.knowledge.search import TEXT_MATCH_BUDGET

    embedder = make_embedder(Settings(_env_file=None))
    store.bind_model(db, embedding_model(embedder), indexes=False)  # exact vector scans: no ANN noise
    query = "zebrafish husbandry"
    near = str(embedder.embed_query(query))
    far = str((-np.asarray(embedder.embed_query(query))).tolist())
    document = db.execute("INSERT INTO knowledge_base (source_uri, title, category, content) "
                          "VALUES ('mem://bulk', 'Bulk', 'notes', 'bulk') RETURNING id").fetchone()[0]
    insert = ("INSERT INTO knowledge_chunks (document_id, position, category, heading, text, char_count, token_count,"
              " embedding) SELECT %s, g, 'notes', %s, %s || g, 40, 6, %s::vector FROM generate_series(%s::int, %s::int) g")
    common = TEXT_MATCH_BUDGET + 100
    # "husbandry" in more chunks than the budget; these chunks are the farthest from the query's vector
    db.execute(insert, (document, None, "husbandry log entry ", far, 1, common))
    # the query's nearest vectors belong to chunks without either word
    db.execute(insert, (document, None, "staffing note ", near, common + 1, common + 60))
    # the chunk only full-text finds: the rare word "zebrafish" (and the common one), its vector far away
    target = db.execute(insert + " RETURNING id", (document, "Zebrafish husbandry", "zebrafish zebrafish husbandry ",
                                                   far, common + 61, common + 61)).fetchone()[0]
    store.refresh_terms(db)
    frequencies = dict(db.execute("SELECT lexeme, chunks FROM knowledge_terms WHERE lexeme = ANY(%s)",
                                  (["zebrafish", "husbandri"],)).fetchall())
    assert frequencies == {"zebrafish": 1, "husbandri": common + 1}
    hits = [p.chunk_id for p in search(db, embedder, query, k=5)]
    assert target in hits[:2], hits  # text rank 1 (RRF 1/61), level with the best vector hit
