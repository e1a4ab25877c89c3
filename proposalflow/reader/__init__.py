"""The web reader: `make_reader(settings).read(url) -> Page`.

Implementations: `direct` (httpx + trafilatura, the default without a key) and `jina` (Jina AI
Reader, with the direct reader as fallback). Both obey the SSRF guard (`safety.py`), per-site
rate limits and a global concurrency cap (`limits.py`), timeouts, size and redirect caps, and
bounded retries with backoff that honour Retry-After. Given a cache (`DatabaseCache`), pages
younger than the TTL are served from the database instead of the network.

    reader = make_reader(settings)                                   # no database needed
    reader = make_reader(settings, cache=DatabaseCache.connect(settings))
    page = reader.read("https://example.com")                        # Page, or FetchFailed / UnsafeURL
"""

from __future__ import annotations

from typing import Protocol

from ..errors import FetchFailed, UnsafeURL
from ..settings import Settings, get_settings
from .cache import CachedReader, DatabaseCache, cache_key
from .direct import DirectReader
from .fallback import FallbackReader
from .jina import JinaReader
from .limits import Limits, shared_limits
from .page import Page
from .safety import UrlGuard
from .stats import ReaderStats

__all__ = ["Page", "Reader", "make_reader", "DatabaseCache", "ReaderStats", "FetchFailed", "UnsafeURL",
           "DirectReader", "JinaReader", "FallbackReader", "CachedReader", "UrlGuard", "cache_key"]


class Reader(Protocol):
    name: str
    stats: ReaderStats

    def read(self, url: str) -> Page:
        """The page at `url`. Raises UnsafeURL (refused before any request) or FetchFailed."""
        ...

    def close(self) -> None: ...


def make_reader(settings: Settings | None = None, *, cache: DatabaseCache | None = None,
                limits: Limits | None = None, stats: ReaderStats | None = None) -> Reader:
    """The reader the settings ask for (PROPOSALFLOW_READER), in front of `cache` when given.

    Readers built from equal settings share one process-wide set of rate limits unless `limits`
    is given. `stats` counts requests, retries, cache hits and fallbacks across the layers.
    """
    settings = settings or get_settings()
    stats = stats or ReaderStats()
    guard = UrlGuard.from_settings(settings)
    jina = settings.reader_provider == "jina"
    # one set of limits for both readers, so a fallback to direct spends the same per-site budget
    limits = limits or shared_limits(settings.reader_host_rate, settings.reader_host_burst,
                                     settings.reader_concurrency, settings.jina_requests_per_minute if jina else None)
    direct = DirectReader(settings, guard=guard, stats=stats, limits=limits)
    reader: Reader = direct
    if jina:
        reader = FallbackReader(JinaReader(settings, guard=guard, stats=stats, limits=limits), direct, stats)
    if cache is not None:
        reader = CachedReader(reader, cache, stats)
    return reader
