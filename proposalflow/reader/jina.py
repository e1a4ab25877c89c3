"""The `jina` reader: Jina AI Reader (`GET https://r.jina.ai/{url}`) with its JSON answer.

Answer: {"code": 200, "status": 20000, "data": {"title", "description", "url", "content",
"links"?, …}}. Errors: JSON {"code", "name", "message"} with the HTTP status (402
InsufficientBalanceError, 429 RateLimitTriggeredError with Retry-After, 451 …).

The target URL passes the same SSRF guard as the direct reader before it is handed to Jina (no
internal addresses leave the building), and both the target site's rate and Jina's own
requests-per-minute limit apply.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import httpx

from ..errors import FetchFailed, UnsafeURL
from ..http import USER_AGENT
from .body import read_capped
from .html import parse_text, sort_meta_tags
from .limits import Limits, shared_limits
from .page import Page, utcnow
from .retrying import Transient, transient_status, with_retries
from .safety import UrlGuard
from .stats import ReaderStats

FALLBACK_STATUS = {401, 402, 403, 451}  # a key or balance problem, or refused for legal reasons: another reader may do
TRANSIENT_5XX = {520, 521, 522, 523, 524, 525, 526, 527, 529, 530}  # besides 500/502/503/504 (RETRYABLE_STATUS)
JINA_EXTRA_SECONDS = 5  # Jina needs a few seconds of its own on top of the X-Timeout it gives the target


class JinaReader:
    name = "jina"

    def __init__(self, settings, *, guard: UrlGuard | None = None, limits: Limits | None = None,
                 stats: ReaderStats | None = None, client: httpx.Client | None = None):
        self.settings = settings
        self.base_url = settings.jina_reader_url.rstrip("/")
        self.guard = guard or UrlGuard.from_settings(settings)
        self.limits = limits or shared_limits(settings.reader_host_rate, settings.reader_host_burst,
                                              settings.reader_concurrency, settings.jina_requests_per_minute)
        self.stats = stats or ReaderStats()
        self.timeout = settings.reader_timeout_seconds
        self.attempts = settings.reader_attempts
        self.max_bytes = settings.reader_max_bytes
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, "X-Return-Format": "markdown",
                   "X-With-Links-Summary": "true", "X-Timeout": str(max(1, int(self.timeout)))}
        if settings.jina_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.jina_api_key.get_secret_value()}"
        self.client = client or httpx.Client(timeout=httpx.Timeout(self.timeout + JINA_EXTRA_SECONDS, connect=10.0),
                                             headers=headers)

    def read(self, url: str) -> Page:
        try:
            # checked in every attempt: a temporary DNS failure (ResolutionFailed) is retried like a network error
            page = with_retries(url, lambda: self._attempt(url, self.guard.check(url).site), attempts=self.attempts,
                                stats=self.stats)
        except (FetchFailed, UnsafeURL):
            self.stats.add(failures=1)
            raise
        self.stats.add(fetched=1)
        return page

    def close(self) -> None:
        self.client.close()

    def _attempt(self, url: str, site: str) -> Page:
        deadline = time.monotonic() + self.timeout + JINA_EXTRA_SECONDS
        with self.limits.slot(site, service="jina"):
            self.stats.add(requests=1)
            try:
                response = self.client.send(self.client.build_request("GET", f"{self.base_url}/{url}"), stream=True)
            except httpx.TimeoutException as exc:
                raise Transient(f"{url}: Jina Reader timed out ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                raise Transient(f"{url}: Jina Reader unreachable: {type(exc).__name__}: {exc}") from exc
            try:
                body = self._body(response, url, deadline)
            finally:
                response.close()  # unread rest of an oversized answer: the connection is dropped, not drained
        problem = transient_status(response, url) or _transient_5xx(response, url)
        if problem:
            problem.args = (f"{problem.args[0]} from Jina Reader{_error_text(body)}",)
            raise problem
        if response.status_code >= 400:
            # any other 5xx (501, 505 …) is Jina's own trouble: the direct reader may still read the page
            raise FetchFailed(f"{url}: Jina Reader answered HTTP {response.status_code}{_error_text(body)}",
                              url=url, status=response.status_code,
                              fallback_ok=response.status_code in FALLBACK_STATUS or response.status_code >= 500)
        try:
            data = json.loads(body)["data"]
            content = data.get("content") or ""
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FetchFailed(f"{url}: Jina Reader's answer is not its JSON format", url=url,
                              status=response.status_code, fallback_ok=True) from exc
        final_url = data.get("url") or url
        structured = parse_text(content)["structured"]
        structured.update(_metadata(data.get("metadata")))
        opengraph, meta = structured.get("opengraph", {}), structured.get("meta", {})
        title = _text(data.get("title")) or opengraph.get("og:title")
        description = (_text(data.get("description")) or meta.get("description") or opengraph.get("og:description")
                       or meta.get("twitter:description"))
        return Page(url=url, final_url=final_url, status=200, title=title,
                    description=description, content=content.strip(),
                    links=_links(data.get("links")), structured=structured, fetched_at=utcnow(),
                    content_type="text/markdown", reader=self.name)

    def _body(self, response: httpx.Response, url: str, deadline: float) -> bytes:
        return read_capped(response, url, max_bytes=self.max_bytes, deadline=deadline,
                           seconds=self.timeout + JINA_EXTRA_SECONDS, what="Jina Reader's answer", stats=self.stats)


def _transient_5xx(response: httpx.Response, url: str) -> Transient | None:
    """Cloudflare's 52x in front of Jina (origin down, timed out …) and 529 (overloaded) pass; retry them."""
    if response.status_code in TRANSIENT_5XX:
        return Transient(f"{url}: HTTP {response.status_code}", status=response.status_code)
    return None


def _metadata(value) -> dict[str, dict[str, str]]:
    """Jina's `metadata` (the page's <meta> tags, name or property → content) split the way the
    direct reader's HTML parser splits them: og:/article:/business: keys into `opengraph`, the
    descriptive names into `meta` — so the extractor finds og:site_name and the rest either way."""
    if not isinstance(value, dict):
        return {}
    opengraph, meta = sort_meta_tags((key, _text(raw)) for key, raw in value.items())
    return {name: found for name, found in (("opengraph", opengraph), ("meta", meta)) if found}


def _text(value) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    return " ".join(value.split())[:2000] or None


def _links(value) -> list[str]:
    """Jina gives links as {text: url} (links summary) or a list of urls / [text, url] pairs."""
    if isinstance(value, dict):
        candidates = list(value.values())
    elif isinstance(value, list):
        candidates = [v[-1] if isinstance(v, (list, tuple)) and v else v for v in value]
    else:
        return []
    links = [c for c in candidates if isinstance(c, str) and urlsplit(c).scheme in ("http", "https")]
    return list(dict.fromkeys(c.split("#", 1)[0] for c in links))


def _error_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        name, message = body.get("name"), body.get("readableMessage") or body.get("message")
    except (ValueError, AttributeError):
        return ""
    return f" ({name}: {str(message)[:300]})" if name or message else ""
