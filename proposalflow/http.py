"""Small HTTP helpers shared by the core's providers: bounded retries with backoff that honour
Retry-After, and streamed downloads with a size cap."""

from __future__ import annotations

import email.utils
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from .errors import IntegrationFailed

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "proposalflow/0.1 (+https://github.com/proposalflow)"


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), else `default`."""
    value = response.headers.get("retry-after")
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
    except (TypeError, ValueError):
        return default


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter, for attempt 1, 2, 3 …"""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


def download(url: str, dest: Path, *, timeout: float = 60.0, max_bytes: int = 2 << 30, attempts: int = 3) -> httpx.Headers:
    """Stream `url` into `dest`. Retries transient failures; raises IntegrationFailed otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(1, attempts + 1):
        try:
            with httpx.stream("GET", url, timeout=timeout, follow_redirects=True,
                              headers={"User-Agent": USER_AGENT}) as response:
                if response.status_code in RETRYABLE_STATUS and attempt < attempts:
                    last_error = f"HTTP {response.status_code}"
                    time.sleep(min(60.0, retry_after_seconds(response, backoff_delay(attempt))))
                    continue
                if response.status_code >= 400:
                    raise IntegrationFailed(f"{url}: HTTP {response.status_code} {response.reason_phrase}")
                size = 0
                with dest.open("wb") as fh:
                    for chunk in response.iter_bytes(1 << 20):
                        size += len(chunk)
                        if size > max_bytes:
                            raise IntegrationFailed(f"{url}: larger than the {max_bytes} byte limit")
                        fh.write(chunk)
                return response.headers
        except httpx.TransportError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
            if attempt < attempts:
                time.sleep(backoff_delay(attempt))
    raise IntegrationFailed(f"{url}: could not be fetched after {attempts} attempts ({last_error})")
