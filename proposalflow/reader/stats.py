"""Counters a reader keeps, for reports, benchmarks and tests (thread-safe)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields


@dataclass
class ReaderStats:
    requests: int = 0       # HTTP requests sent (every attempt and redirect hop)
    retries: int = 0        # attempts repeated after a transient failure
    fetched: int = 0        # pages read from the network
    cache_hits: int = 0     # pages served from the cache
    fallbacks: int = 0      # pages the fallback reader fetched after the primary failed
    failures: int = 0       # reads that ended in an error
    bytes: int = 0          # body bytes received
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
