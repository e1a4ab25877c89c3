"""The OpenAI embeddings path against a local server speaking the real /v1/embeddings wire format."""

import numpy as np
import pytest

from proposalflow.errors import IntegrationFailed
from proposalflow.knowledge import store
from proposalflow.knowledge.documents import folder_sources
from proposalflow.knowledge.embedders import (MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_REQUEST, count_tokens,
                                              embedding_model, make_embedder)
from proposalflow.knowledge.ingest import add_documents
from proposalflow.knowledge.search import search
from proposalflow.settings import Settings
from tests.fakes.openai_server import HTTPError, OpenAIServer, hashed_embedding


def openai_settings(server: OpenAIServer, **extra) -> Settings:
    return Settings(_env_file=None, OPENAI_API_KEY="sk-test", OPENAI_BASE_URL=server.base_url, **extra)


def embedding_requests(server: OpenAIServer) -> list[dict]:
    return [body for path, body in server.requests if path.endswith("/embeddings")]


def test_vectors_arrive_base64_encoded_and_decode_exactly():
    with OpenAIServer() as server:
        embedder = make_embedder(openai_settings(server))
        vectors = embedder.embed_documents(["local SEO for clinics", "paid ads"])
    (request,) = embedding_requests(server)
    assert request["model"] == "text-embedding-3-small" and request["encoding_format"] == "base64"
    assert request["input"] == ["local SEO for clinics", "paid ads"]  # text, not token ids: no tiktoken download
    assert np.allclose(vectors[0], hashed_embedding("local SEO for clinics", 1536), atol=1e-6)
    assert embedding_model(embedder).dimension == 1536


def test_float_encoding_also_works():
    with OpenAIServer() as server:
        embedder = make_embedder(openai_settings(server))
        embedder.model_kwargs = {"encoding_format": "float"}
        vector = embedder.embed_query("paid ads")
    assert embedding_requests(server)[0]["encoding_format"] == "float"
    assert np.allclose(vector, hashed_embedding("paid ads", 1536), atol=1e-6)


def test_requests_respect_both_the_input_and_the_token_limit():
    many_short = [f"t{i}" for i in range(MAX_INPUTS_PER_REQUEST * 2 + 5)]
    few_long = ["word " * 2000] * 80  # 10,000 bytes each: 800,000 tokens at most in all
    with OpenAIServer(dimensions=8) as server:
        embedder = make_embedder(openai_settings(server, PROPOSALFLOW_EMBEDDING_MODEL="compat-model"))
        assert len(embedder.embed_documents(many_short)) == len(many_short)
        assert len(embedder.embed_documents(few_long)) == len(few_long)
        assert embedding_model(embedder).dimension == 8  # an unknown model: asked once
    requests = embedding_requests(server)
    sizes = [len(r["input"]) for r in requests]
    assert sizes[:3] == [2048, 2048, 5]
    assert all(sum(count_tokens(t) for t in r["input"]) <= MAX_TOKENS_PER_REQUEST for r in requests)
    assert sizes[3:] == [30, 30, 20, 1]  # 30 × 10,000 bytes ≤ 300,000 tokens; then the dimension probe


def test_a_rate_limit_answer_is_retried_after_its_retry_after():
    fault = HTTPError(429, {"error": {"message": "slow down", "type": "rate_limit_exceeded"}}, {"retry-after": "1"})
    with OpenAIServer(faults=[fault, fault]) as server:
        vectors = make_embedder(openai_settings(server)).embed_documents(["seo"])
    assert len(vectors) == 1 and len(embedding_requests(server)) == 3


def test_a_server_that_keeps_failing_is_an_integration_failure():
    fault = HTTPError(503, headers={"retry-after-ms": "20"})
    with OpenAIServer(faults=[fault] * 10) as server:
        embedder = make_embedder(openai_settings(server))
        with pytest.raises(IntegrationFailed, match="embeddings request"):
            embedder.embed_documents(["seo"])
    assert len(embedding_requests(server)) == 5  # bounded: the first try and 4 retries


def test_embed_and_search_through_the_openai_provider(db, tmp_path):
    (tmp_path / "pricing").mkdir()
    (tmp_path / "pricing" / "rates.md").write_text("# Rates\n\npaid ads management fee is fifteen percent")
    (tmp_path / "services.md").write_text("# Services\n\nwebsite design and accessibility")
    with OpenAIServer() as server:
        embedder = make_embedder(openai_settings(server))
        summary = add_documents(db, embedder, folder_sources(tmp_path))
        hits = search(db, embedder, "paid ads management fee", k=1)
    assert summary.embedded == 2
    assert hits[0].title == "Rates"
    assert str(store.recorded_model(db)) == "openai:text-embedding-3-small (1536-d)"


def test_text_embedding_3_large_is_stored_as_3072_d_and_searched_through_a_halfvec_index(db, tmp_path):
    """Above 2,000 dimensions pgvector's HNSW cannot index `vector`: the index is on a halfvec cast."""
    (tmp_path / "pricing").mkdir()
    (tmp_path / "pricing" / "rates.md").write_text("# Rates\n\npaid ads management fee is fifteen percent")
    (tmp_path / "services.md").write_text("# Services\n\nwebsite design and accessibility")
    (tmp_path / "team.md").write_text("# Team\n\nDana Whitfield founded the agency")
    with OpenAIServer(dimensions=3072) as server:
        embedder = make_embedder(openai_settings(server, PROPOSALFLOW_EMBEDDING_MODEL="text-embedding-3-large"))
        summary = add_documents(db, embedder, folder_sources(tmp_path))
        hits = search(db, embedder, "paid ads management fee", k=1)
        filtered = search(db, embedder, "paid ads management fee", k=3, category="pricing")
    assert {r["model"] for r in embedding_requests(server)} == {"text-embedding-3-large"}
    assert summary.embedded == 3 and summary.chunks == 3
    assert str(store.recorded_model(db)) == "openai:text-embedding-3-large (3072-d)"
    assert db.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                      "'knowledge_chunks'::regclass AND attname = 'embedding'").fetchone()[0] == "vector(3072)"
    assert db.execute("SELECT vector_dims(embedding) FROM knowledge_chunks LIMIT 1").fetchone()[0] == 3072
    indexdef = db.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", (store.HNSW_INDEX,)).fetchone()[0]
    assert "halfvec(3072)" in indexdef and "halfvec_cosine_ops" in indexdef
    assert hits[0].title == "Rates" and [p.title for p in filtered] == ["Rates"]
    # the search's vector expression is the indexed one, so the planner can use the index
    db.execute("SET enable_seqscan = off")
    query = np.asarray(hashed_embedding("paid ads management fee", 3072), dtype=np.float32)
    plan = "\n".join(r[0] for r in db.execute(
        f"EXPLAIN SELECT id FROM knowledge_chunks ORDER BY {store.vector_expression(3072)} <=> %s::halfvec(3072) LIMIT 5",
        (str(query.tolist()),)).fetchall())
    assert store.HNSW_INDEX in plan, plan
