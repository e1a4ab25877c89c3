"""OpenAI (or any OpenAI-compatible server) embeddings, batched by inputs and tokens, rate-limited.

A module of its own because langchain_openai takes ~1.5 s to import: `kb search` with the local
embedder never pays for it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from langchain_openai import OpenAIEmbeddings
from pydantic import PrivateAttr

from ..errors import IntegrationFailed, ValidationFailed
from .embedders import MAX_INPUTS_PER_REQUEST, MAX_TOKENS_PER_REQUEST, OPENAI_DIMENSIONS, token_aware_batches


class BatchedOpenAIEmbeddings(OpenAIEmbeddings):
    """OpenAIEmbeddings whose requests respect OpenAI's per-request input AND token limits,
    with a client-side rate limit (requests per minute)."""

    max_batch_tokens: int = MAX_TOKENS_PER_REQUEST
    requests_per_minute: int = 3000
    _last_request: float = PrivateAttr(default=0.0)
    _limit_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _dimension: int | None = PrivateAttr(default=None)

    provider: str = "openai"

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def dimension(self) -> int:
        if self.dimensions:
            return int(self.dimensions)
        if self.model in OPENAI_DIMENSIONS:
            return OPENAI_DIMENSIONS[self.model]
        if self._dimension is None:  # an unknown model on a compatible server: ask it once
            self._dimension = len(self.embed_query("dimension probe"))
        return self._dimension

    def embed_documents(self, texts: list[str], chunk_size: int | None = None, **kwargs: Any) -> list[list[float]]:
        vectors: list[list[float]] = []
        limit = min(chunk_size or self.chunk_size, MAX_INPUTS_PER_REQUEST)
        for start, end in token_aware_batches(texts, limit, self.max_batch_tokens):
            self._wait_for_rate_limit()
            try:
                vectors.extend(super().embed_documents(texts[start:end], chunk_size=end - start, **kwargs))
            except Exception as exc:  # openai's errors, after its own retries
                if type(exc).__name__ in ("BadRequestError", "UnprocessableEntityError"):
                    raise ValidationFailed(f"the embeddings request was refused ({exc})") from exc
                if type(exc).__module__.startswith("openai"):
                    raise IntegrationFailed(f"embeddings request to {self.openai_api_base or 'OpenAI'} failed "
                                            f"({type(exc).__name__}: {exc})") from exc
                raise
        return vectors

    def _wait_for_rate_limit(self) -> None:
        interval = 60.0 / self.requests_per_minute if self.requests_per_minute > 0 else 0.0
        with self._limit_lock:
            wait = self._last_request + interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()
