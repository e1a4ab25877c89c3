"""The chat model provider: OpenAI or any OpenAI-compatible server, or none (offline).

`make_chat_model` returns None when the product runs offline (no key, or PROPOSALFLOW_LLM=offline):
callers then use their deterministic path and say so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ConfigurationError
from .settings import Settings, get_settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

DEFAULT_TIMEOUT_SECONDS = 120.0


def make_chat_model(settings: Settings | None = None, *, temperature: float = 0.2,
                    timeout: float = DEFAULT_TIMEOUT_SECONDS, max_retries: int = 3) -> "BaseChatModel | None":
    """ChatOpenAI from settings (with a fallback model when configured), or None if offline.

    The openai client retries 408/409/429/5xx and connection errors `max_retries` times with
    exponential backoff, honouring Retry-After.
    """
    settings = settings or get_settings()
    if settings.llm_provider == "offline":
        return None
    if settings.openai_api_key is None:
        raise ConfigurationError("PROPOSALFLOW_LLM=openai needs OPENAI_API_KEY (any value for a local server)")
    from langchain_openai import ChatOpenAI

    def model(name: str) -> "ChatOpenAI":
        return ChatOpenAI(model=name, api_key=settings.openai_api_key, base_url=settings.openai_base_url,
                          temperature=temperature, timeout=timeout, max_retries=max_retries)

    primary = model(settings.llm_model)
    if settings.llm_fallback_model:
        return primary.with_fallbacks([model(settings.llm_fallback_model)])
    return primary
