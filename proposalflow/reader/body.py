"""Reading a response body within a size cap and a time limit, for both readers.

A body is refused unread when its Content-Length is over the cap, cut off as soon as the bytes
read pass it (no Content-Length, or a wrong one), and bounded in time (a server that dribbles).
"""

from __future__ import annotations

import time

import httpx

from ..errors import FetchFailed
from .retrying import Transient
from .stats import ReaderStats


def check_declared_size(response: httpx.Response, url: str, max_bytes: int, what: str) -> None:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"{url}: {what} is {int(declared):,} bytes, over the {max_bytes:,} byte limit",
                          url=url, status=response.status_code)


def read_capped(response: httpx.Response, url: str, *, max_bytes: int, deadline: float, seconds: float,
                what: str, stats: ReaderStats) -> bytes:
    """The body's bytes. `what` names it in errors ("the page"); `seconds` is the limit that
    `deadline` (a time.monotonic() value) stands for."""
    check_declared_size(response, url, max_bytes, what)
    chunks, size = [], 0
    try:
        for chunk in response.iter_bytes(65536):
            size += len(chunk)
            if size > max_bytes:
                stats.add(bytes=size)
                raise FetchFailed(f"{url}: {what} is over the {max_bytes:,} byte limit", url=url,
                                  status=response.status_code)
            if time.monotonic() > deadline:
                raise Transient(f"{url}: {what} took longer than {seconds:g} s")
            chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise Transient(f"{url}: {what} timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise Transient(f"{url}: {type(exc).__name__} while reading {what}: {exc}") from exc
    stats.add(bytes=size)
    return b"".join(chunks)
