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
