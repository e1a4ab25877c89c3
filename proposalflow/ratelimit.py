"""Per-caller rate limits: the generic cell rate algorithm (GCRA), one timestamp per key.

`RateLimiter("30/minute").hit(key)` allows a burst of up to 30, then one every 2 s; a refused hit
says how long until the next one would pass (for `Retry-After`). In-process: with several API
workers each enforces its own share, so the effective limit is up to workers × the rate.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)s?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
          "d": 86400, "day": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: float

    @property
    def interval(self) -> float:
        return self.seconds / self.count


def parse_rate(text: str) -> Rate:
    """'30/minute', '5/10s', '1000/hour' → Rate."""
    match = _RATE.match(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"{text!r} is not a rate like 30/minute, 5/10s or 1000/hour")
    multiplier = int(match.group(2)) if match.group(2) else 1
    return Rate(int(match.group(1)), float(multiplier * _UNITS[match.group(3).lower()]))


class RateLimiter:
    def __init__(self, rate: str | Rate, *, clock=time.monotonic, max_keys: int = 100_000):
        self.rate = parse_rate(rate) if isinstance(rate, str) else rate
        self._clock = clock
        self._tat: dict[str, float] = {}  # key → theoretical arrival time of the next request
        self._lock = threading.Lock()
        self._max_keys = max_keys

    def hit(self, key: str) -> tuple[bool, float]:
        """(allowed, seconds to wait before retrying — 0 when allowed)."""
        interval = self.rate.interval
        burst = self.rate.seconds - interval  # how far ahead of now the TAT may run
        with self._lock:
            now = self._clock()
            tat = max(self._tat.get(key, now), now)
            if tat - now > burst:
                return False, tat - now - burst
            if len(self._tat) >= self._max_keys:
                self._tat = {k: v for k, v in self._tat.items() if v > now}
            self._tat[key] = tat + interval
            return True, 0.0


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
