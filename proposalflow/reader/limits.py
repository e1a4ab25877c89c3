"""Rate limits for the reader: requests per second per site, requests per minute to a hosted
reader service (Jina), and a cap on requests in flight.

A request is booked against the rates at the moment it is sent (while holding an in-flight slot),
never ahead of time, so the limits hold for the times the servers actually see — a thread that
waited for a slot cannot send late and bunch up with the next one. Threads that must wait for a
rate release their slot while they sleep.

All of it is per process and thread-safe; readers built from the same settings share one `Limits`
(`shared_limits`), so the concurrent tasks of a flow run stay within the limits together. Several
worker machines each keep their own budget: divide the rates accordingly.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator


class RateLimiter:
    """Generic cell rate algorithm per key: up to `burst` requests back to back, then one every
    1/`rate` seconds on average."""

    def __init__(self, rate: float, burst: int = 1):
        self.rate = rate
        self.burst = max(1, burst)
        self.interval = 1.0 / rate
        self.tolerance = self.interval * (self.burst - 1)
        self._tat: dict[str, float] = {}  # theoretical arrival time per key

    def wait_time(self, key: str, now: float) -> float:
        tat = self._tat.get(key, now)
        return max(0.0, tat - self.tolerance - now)

    def book(self, key: str, now: float) -> None:
        self._tat[key] = max(self._tat.get(key, now), now) + self.interval
        if len(self._tat) > 10_000:  # forget keys whose slots are long past
            self._tat = {k: v for k, v in self._tat.items() if v > now}


class Limits:
    """The limits a reader obeys. `slot(site, service)` blocks until one more request to `site`
    (and through `service`) conforms to the rates and an in-flight slot is free, then holds it."""

    def __init__(self, host_rate: float, host_burst: int, concurrency: int, service_rpm: int | None = None):
        self.hosts = RateLimiter(host_rate, host_burst)
        self.service = RateLimiter(service_rpm / 60.0, 1) if service_rpm else None
        self.concurrency = concurrency
        self._in_flight = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    @contextmanager
    def slot(self, site: str, service: str | None = None) -> Iterator[None]:
        started = time.monotonic()
        while True:
            self._in_flight.acquire()
            with self._lock:
                now = time.monotonic()
                wait = self.hosts.wait_time(site, now)
                if service and self.service:
                    wait = max(wait, self.service.wait_time(service, now))
                if wait <= 0:
                    self.hosts.book(site, now)
                    if service and self.service:
                        self.service.book(service, now)
                    self.waited_seconds += now - started
                    break
            self._in_flight.release()
            time.sleep(min(wait, 5.0))
        try:
            yield
        finally:
            self._in_flight.release()


_shared: dict[tuple, Limits] = {}
_shared_lock = threading.Lock()


def shared_limits(host_rate: float, host_burst: int, concurrency: int, service_rpm: int | None = None) -> Limits:
    """The process-wide Limits for these values."""
    key = (host_rate, host_burst, concurrency, service_rpm)
    with _shared_lock:
        if key not in _shared:
            _shared[key] = Limits(host_rate, host_burst, concurrency, service_rpm)
        return _shared[key]
