"""The `direct` reader: fetch the page over HTTP ourselves and extract its text and data.

Every hop (the first request and each redirect) passes the SSRF guard and the rate limits;
redirects, body size and time are capped; transient failures are retried with backoff.
"""

from __future__ import annotations

import re
import time
from urllib.parse import urljoin

import httpx

from ..errors import FetchFailed, UnsafeURL
from ..http import USER_AGENT
from .body import check_declared_size, read_capped
from .html import parse_html, parse_text
from .limits import Limits, shared_limits
from .page import Page, utcnow
from .retrying import Transient, transient_status, with_retries
from .safety import UrlGuard
from .stats import ReaderStats

HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([A-Za-z0-9_.:-]+)""", re.I)
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")


class DirectReader:
    name = "direct"

    def __init__(self, settings, *, guard: UrlGuard | None = None, limits: Limits | None = None,
                 stats: ReaderStats | None = None, client: httpx.Client | None = None):
        self.settings = settings
        self.guard = guard or UrlGuard.from_settings(settings)
        self.limits = limits or shared_limits(settings.reader_host_rate, settings.reader_host_burst,
                                              settings.reader_concurrency)
        self.stats = stats or ReaderStats()
        self.timeout = settings.reader_timeout_seconds
        self.max_bytes = settings.reader_max_bytes
        self.max_redirects = settings.reader_max_redirects
        self.attempts = settings.reader_attempts
        # trust_env=False: an environment proxy would resolve names itself and defeat the SSRF guard
        self.client = client or httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 10.0)),
            follow_redirects=False, trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept": ACCEPT, "Accept-Language": "en;q=1.0, *;q=0.5"},
            limits=httpx.Limits(max_connections=max(10, settings.reader_concurrency * 2), max_keepalive_connections=20),
        )

    def read(self, url: str) -> Page:
        try:
            page = with_retries(url, lambda: self._attempt(url), attempts=self.attempts, stats=self.stats)
        except (FetchFailed, UnsafeURL):
            self.stats.add(failures=1)
            raise
        self.stats.add(fetched=1)
        return page

    def close(self) -> None:
        self.client.close()

    # --- one attempt: follow redirects by hand, checking every hop --------------------------------
    def _attempt(self, url: str) -> Page:
        deadline = time.monotonic() + self.timeout
        current = url
        for hop in range(self.max_redirects + 1):
            target = self.guard.check(current)
            with self.limits.slot(target.site):
                headers = {"Host": target.host_header} if target.host_header else {}
                extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else {}
                request = self.client.build_request("GET", target.connect_url, headers=headers, extensions=extensions)
                self.stats.add(requests=1)
                try:
                    response = self.client.send(request, stream=True)
                except httpx.TimeoutException as exc:
                    raise Transient(f"{current}: timed out after {self.timeout:g} s ({type(exc).__name__})") from exc
                except httpx.TransportError as exc:
                    raise Transient(f"{current}: {type(exc).__name__}: {exc}") from exc
                try:
                    if response.is_redirect and response.headers.get("location"):
                        current = urljoin(target.url, response.headers["location"])
                        continue
                    problem = transient_status(response, current)
                    if problem:
                        raise problem
                    if response.status_code >= 400:
                        raise FetchFailed(f"{current}: HTTP {response.status_code} {response.reason_phrase}",
                                          url=url, status=response.status_code,
                                          fallback_ok=response.status_code in (401, 403, 451))
                    body = self._body(response, current, deadline)
                finally:
                    response.close()
            return self._page(url, target.url, response, body)
        raise FetchFailed(f"{url}: more than {self.max_redirects} redirects", url=url, status=None)

    def _body(self, response: httpx.Response, url: str, deadline: float) -> bytes:
        check_declared_size(response, url, self.max_bytes, "the page")  # before the type: the clearer reason
        kind = _media_type(response)
        if kind and not kind.startswith(HTML_TYPES + TEXT_TYPES):
            raise FetchFailed(f"{url}: not an HTML or text page (content-type {kind})", url=url,
                              status=response.status_code)
        return read_capped(response, url, max_bytes=self.max_bytes, deadline=deadline, seconds=self.timeout,
                           what="the page", stats=self.stats)

    def _page(self, url: str, final_url: str, response: httpx.Response, body: bytes) -> Page:
        kind = _media_type(response)
        text = _decode(body, response)
        if kind.startswith(TEXT_TYPES) or (not kind and not text.lstrip().startswith("<")):
            fields = parse_text(text)
        elif kind.startswith(HTML_TYPES) or text.lstrip().startswith("<"):
            fields = parse_html(_XML_DECL.sub("", text, count=1), final_url)
        else:
            raise FetchFailed(f"{url}: not an HTML or text page", url=url, status=response.status_code)
        return Page(url=url, final_url=final_url, status=response.status_code, fetched_at=utcnow(),
                    content_type=kind or None, reader=self.name, **fields)


def _media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _decode(body: bytes, response: httpx.Response) -> str:
    charset = response.charset_encoding
    if not charset:
        match = _META_CHARSET.search(body[:4096])
        charset = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return body.decode(charset, errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")
