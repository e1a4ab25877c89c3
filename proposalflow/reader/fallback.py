"""Jina with the direct reader behind it."""

from __future__ import annotations

from ..errors import FetchFailed, UnsafeURL
from .stats import ReaderStats


class FallbackReader:
    """Jina first; the direct reader when Jina fails in a way the direct reader may not (402, 451,
    401/403, 5xx or 429 after retries, a broken answer). Page.reader says who fetched a page."""

    def __init__(self, primary, fallback, stats: ReaderStats | None = None):
        self.primary = primary
        self.fallback = fallback
        self.stats = stats or primary.stats
        self.name = f"{primary.name}+{fallback.name}"
        self.last_fallback_reason: str | None = None

    def read(self, url: str) -> Page:
        try:
            return self.primary.read(url)
        except UnsafeURL:
            raise
        except FetchFailed as exc:
            if not exc.fallback_ok:
                raise
            self.last_fallback_reason = str(exc)
            self.stats.add(fallbacks=1)
            page = self.fallback.read(url)
            page.structured.setdefault("reader_fallback", {"from": self.primary.name, "reason": str(exc)[:500]})
            return page

    def close(self) -> None:
        self.primary.close()
        self.fallback.close()

