"""What one API process holds: settings, the token verifier, the connection pool, rate limiters,
metrics, the file store, the embedder and the flow launcher — created lazily, closed at shutdown."""

from __future__ import annotations

import os
import threading
from functools import cached_property
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from proposalflow.ratelimit import RateLimiter
from proposalflow.security import TokenVerifier
from proposalflow.settings import Settings
from proposalflow.users import SeenUsers


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("proposalflow_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("proposalflow_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.triggers = Counter("proposalflow_flow_triggers_total", "Flow runs started through the API",
                                ["flow", "mode"], registry=self.registry)
        self.rate_limited = Counter("proposalflow_rate_limited_total", "Requests refused by a rate limit",
                                    ["limit"], registry=self.registry)

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several workers: aggregate their files
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)


class Services:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.metrics = Metrics()
        self.seen_users = SeenUsers(ttl=30.0)
        self.limits = {
            "default": RateLimiter(settings.rate_limit),
            "trigger": RateLimiter(settings.rate_limit_triggers),
            "upload": RateLimiter(settings.rate_limit_uploads),
        }
        self._lock = threading.Lock()
        self._pool = None

    @cached_property
    def verifier(self) -> TokenVerifier:
        return TokenVerifier.from_settings(self.settings)

    @property
    def database_url(self) -> str:
        from proposalflow.database import database_url

        return database_url(self.settings)

    @property
    def pool(self):
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = self._open_pool()
        return self._pool

    def _open_pool(self):
        from psycopg_pool import ConnectionPool

        from proposalflow.database import ensure_migrated, is_transaction_pooler

        url = self.database_url
        ensure_migrated(url)
        kwargs: dict[str, Any] = {"connect_timeout": 10}
        if is_transaction_pooler(url):
            kwargs["prepare_threshold"] = None
        return ConnectionPool(url, min_size=1, max_size=self.settings.api_pool_size,
                              kwargs=kwargs, timeout=15, open=True, name="proposalflow-api")

    @cached_property
    def file_store(self):
        from proposalflow.filestore import make_file_store

        return make_file_store(self.settings)

    @cached_property
    def embedder(self):
        from proposalflow.knowledge.embedders import make_embedder

        return make_embedder(self.settings)

    @cached_property
    def launcher(self):
        from .runner import make_launcher

        return make_launcher(self)

    def close(self) -> None:
        """Wait for in-process flow runs, close the pool. Safe to call more than once; the services
        come back lazily if the app serves again (a test client runs the lifespan per use)."""
        launcher = self.__dict__.pop("launcher", None)
        if launcher is not None:
            launcher.close()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
