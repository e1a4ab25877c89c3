"""Bounded retries for reader requests: exponential backoff with full jitter, honouring
Retry-After (via proposalflow.http), and a cap on how long a Retry-After may make us wait."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

import httpx

from ..errors import FetchFailed
from ..http import RETRYABLE_STATUS, backoff_delay, retry_after_seconds
from .stats import ReaderStats

T = TypeVar("T")
MAX_RETRY_AFTER_SECONDS = 60.0


class Transient(Exception):
    """One attempt failed in a way the next attempt may not: a retryable status or a network error."""

    def __init__(self, message: str, *, status: int | None = None, delay: float | None = None):
        super().__init__(message)
        self.status = status
        self.delay = delay  # from Retry-After, when the server said


def transient_status(response: httpx.Response, url: str) -> Transient | None:
    if response.status_code in RETRYABLE_STATUS:
        header = response.headers.get("retry-after")
        delay = retry_after_seconds(response, -1.0) if header else None
        return Transient(f"{url}: HTTP {response.status_code}", status=response.status_code,
                         delay=None if delay is None or delay < 0 else delay)
    return None


def with_retries(url: str, attempt: Callable[[], T], *, attempts: int, stats: ReaderStats,
                 base_delay: float = 0.5, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run `attempt` up to `attempts` times while it raises Transient. The last failure becomes a
    FetchFailed (fallback_ok: another reader may do better after 5xx, 429 or network trouble)."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Transient as exc:
            last = exc
            if number == attempts:
                break
            delay = exc.delay if exc.delay is not None else backoff_delay(number, base=base_delay)
            if delay > MAX_RETRY_AFTER_SECONDS:
                break  # the server asks for a longer pause than a batch can afford: give up now
            stats.add(retries=1)
            sleep(delay)
    raise FetchFailed(f"{last} (after {number} attempt{'s' if number > 1 else ''})", url=url,
                      status=last.status, fallback_ok=True)
