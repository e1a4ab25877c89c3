"""The reader's cache in PostgreSQL (`reader_cache`, sql/0021): pages by URL with their fetch
time, status and content hash. A page younger than the TTL is served from here, so re-runs and
retries within the TTL do not fetch again.

Rows the demo seeded from the shipped website snapshots (reader `snapshot`) never expire: they
stand in for the sample companies' real sites, which the offline demo — and a daily schedule
running over the demo data — must never fetch. `delete_expired` removes the other rows once they
are older than the TTL (the enrich-clients flow calls it at the start of each run)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Iterable
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.types.json import Jsonb

from .page import Page
from .stats import ReaderStats


SNAPSHOT_READER = "snapshot"  # Page.reader of the demo's shipped snapshots: never expires, never deleted
_FRESH = "(fetched_at > now() - %s OR reader = 'snapshot')"


def cache_key(url: str) -> str:
    """The URL as the cache knows it: scheme and host lowercased, no fragment, "/" for no path."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


class DatabaseCache:
    """Pages in `reader_cache`. Safe to share between threads (one statement at a time on the
    connection, each committed at once); give it a connection of its own, in autocommit mode."""

    def __init__(self, conn: psycopg.Connection, ttl: timedelta):
        self.conn = conn
        self.ttl = ttl
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, settings) -> "DatabaseCache":
        from ..database import connect

        return cls(connect(settings, autocommit=True), timedelta(hours=settings.reader_cache_ttl_hours))

    def get(self, url: str) -> Page | None:
        with self._lock:
            row = self.conn.execute(
                f"SELECT page FROM reader_cache WHERE url = %s AND {_FRESH}",
                (cache_key(url), self.ttl),
            ).fetchone()
        return Page.from_dict(row[0], from_cache=True) if row else None

    def fresh_keys(self, urls: Iterable[str]) -> set[str]:
        """Which of `urls` (as cache keys) have an entry younger than the TTL (or a snapshot)."""
        keys = list({cache_key(u) for u in urls})
        with self._lock:
            rows = self.conn.execute(
                f"SELECT url FROM reader_cache WHERE url = ANY(%s) AND {_FRESH}", (keys, self.ttl)
            ).fetchall()
        return {r[0] for r in rows}

    def put(self, page: Page) -> None:
        self.put_many([page])

    def put_many(self, pages: Iterable[Page], *, only_if_stale: bool = False) -> int:
        """Upsert pages in one statement. `only_if_stale` keeps entries that are still fresh."""
        rows = [{"url": cache_key(p.url), "final_url": p.final_url, "status": p.status, "reader": p.reader,
                 "content_hash": p.content_hash, "page": p.to_dict(), "fetched_at": p.fetched_at.isoformat()}
                for p in pages]
        if not rows:
            return 0
        condition = "WHERE reader_cache.fetched_at <= now() - %s" if only_if_stale else ""
        params: tuple = (Jsonb(rows), self.ttl) if only_if_stale else (Jsonb(rows),)
        with self._lock:
            cur = self.conn.execute(
                f"""INSERT INTO reader_cache (url, final_url, status, reader, content_hash, page, fetched_at)
                    SELECT url, final_url, status, reader, content_hash, page, fetched_at
                      FROM jsonb_to_recordset(%s) AS r(url text, final_url text, status int, reader text,
                                                       content_hash text, page jsonb, fetched_at timestamptz)
                    ON CONFLICT (url) DO UPDATE SET
                        final_url = EXCLUDED.final_url, status = EXCLUDED.status, reader = EXCLUDED.reader,
                        content_hash = EXCLUDED.content_hash, page = EXCLUDED.page, fetched_at = EXCLUDED.fetched_at
                    {condition}""",
                params,
            )
            if not self.conn.autocommit:
                self.conn.commit()
            return cur.rowcount

    def delete_expired(self) -> int:
        """Delete the rows older than the TTL (they would never be served again), except snapshots."""
        with self._lock:
            deleted = delete_expired(self.conn, self.ttl)
            if not self.conn.autocommit:
                self.conn.commit()
        return deleted

    def close(self) -> None:
        self.conn.close()


def delete_expired(conn: psycopg.Connection, ttl: timedelta) -> int:
    """Delete `reader_cache` rows fetched longer than `ttl` ago, keeping the demo's snapshots.
    Returns how many rows went."""
    return conn.execute("DELETE FROM reader_cache WHERE fetched_at <= now() - %s AND reader <> %s",
                        (ttl, SNAPSHOT_READER)).rowcount


class CachedReader:
    """A reader in front of another: fresh cached pages are served, fetched pages are stored."""

    def __init__(self, inner, cache: DatabaseCache, stats: ReaderStats | None = None):
        self.inner = inner
        self.cache = cache
        self.stats = stats or getattr(inner, "stats", None) or ReaderStats()
        self.name = getattr(inner, "name", "reader")

    def read(self, url: str) -> Page:
        cached = self.cache.get(url)
        if cached is not None:
            self.stats.add(cache_hits=1)
            return cached
        page = self.inner.read(url)
        self.cache.put(page)
        return page

    def close(self) -> None:
        self.inner.close()
