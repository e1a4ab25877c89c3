"""Local websites for reader and enrichment tests and the benchmark: real HTTP/1.1 over TCP.

One asyncio loop in a background thread serves any number of sites, each on its own port of
127.0.0.1 (so each is its own "host" for the reader's per-site rate limit):

    with SiteServer(latency=0.05) as server:
        site = server.add_site({"/": "<html>…", "/about": Reply(body="…")})
        site.url("/")                                     # http://127.0.0.1:PORT/
        site.faults["/"] = [Reply(status=500)]            # answered first, then the page
        site.requests                                     # [(path, monotonic time), …]

A `Reply` can hang (`hang` seconds before answering — for timeouts), stream a large chunked body
without Content-Length (`stream_bytes`), redirect (status 30x + location header) or carry any
content type.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = ""
    content_type: str = "text/html; charset=utf-8"
    headers: dict = field(default_factory=dict)
    hang: float = 0.0          # wait this long before answering
    stream_bytes: int = 0      # send this many bytes, chunked, with no Content-Length


@dataclass
class Site:
    port: int
    pages: dict
    faults: dict = field(default_factory=dict)
    requests: list = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    def count(self, path: str | None = None) -> int:
        return sum(1 for p, _ in self.requests if path is None or p == path)


class SiteServer:
    def __init__(self, latency: float = 0.0):
        self.latency = latency
        self.sites: list[Site] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self.in_flight = 0
        self.max_in_flight = 0  # most requests being answered at once, over all sites

    def __enter__(self) -> "SiteServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        async def stop():
            for server in self._servers:
                server.close()
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def add_site(self, pages: dict[str, str | bytes | Reply | Callable[[], Reply]]) -> Site:
        async def start() -> Site:
            site = Site(port=0, pages=pages)
            server = await asyncio.start_server(lambda r, w: self._serve(site, r, w), "127.0.0.1", 0, backlog=512)
            site.port = server.sockets[0].getsockname()[1]
            self._servers.append(server)
            return site

        site = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        self.sites.append(site)
        return site

    @property
    def requests(self) -> int:
        return sum(len(s.requests) for s in self.sites)

    # --- HTTP -------------------------------------------------------------------------------------
    async def _serve(self, site: Site, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                method, target, _ = request_line.split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in
                           (line.split(":", 1) for line in header_lines if ":" in line)}
                path = target.split("?", 1)[0]
                site.requests.append((path, time.monotonic()))
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    reply = self._reply(site, path)
                    if self.latency:
                        await asyncio.sleep(self.latency)
                    if reply.hang:
                        await asyncio.sleep(reply.hang)
                    await self._write(writer, reply, head_only=method == "HEAD")
                finally:
                    self.in_flight -= 1
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError, ValueError):
            pass
        finally:
            writer.close()

    def _reply(self, site: Site, path: str) -> Reply:
        queue = site.faults.get(path)
        if queue:
            return queue.pop(0)
        page = site.pages.get(path)
        if page is None:
            return Reply(status=404, body="<html><title>Not found</title><body>Not found</body></html>")
        if callable(page):
            return page()
        return page if isinstance(page, Reply) else Reply(body=page)

    async def _write(self, writer: asyncio.StreamWriter, reply: Reply, head_only: bool) -> None:
        reason = {200: "OK", 301: "Moved Permanently", 302: "Found", 404: "Not Found", 429: "Too Many Requests",
                  500: "Internal Server Error", 503: "Service Unavailable"}.get(reply.status, "Status")
        lines = [f"HTTP/1.1 {reply.status} {reason}", f"Content-Type: {reply.content_type}"]
        lines += [f"{k}: {v}" for k, v in reply.headers.items()]
        if reply.stream_bytes:
            lines.append("Transfer-Encoding: chunked")
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            chunk = b"<p>" + b"x" * 65530 + b"</p>"
            sent = 0
            while sent < reply.stream_bytes:
                writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            return
        body = reply.body.encode() if isinstance(reply.body, str) else reply.body
        lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if head_only else body))
        await writer.drain()


def company_pages(name: str = "Fjordline Analytics", *, json_ld: bool = True) -> dict[str, str]:
    """A small company website: home (JSON-LD Organization, OpenGraph), about, services, customers,
    contact (email and phone only there), a blog and a privacy page a reader should skip."""
    ld = f"""<script type="application/ld+json">{{"@context": "https://schema.org", "@graph": [
      {{"@type": "Organization", "name": "{name}", "url": "/",
        "description": "{name} builds demand-forecasting software for grocery retailers.",
        "foundingDate": "2011-04-01", "numberOfEmployees": {{"@type": "QuantitativeValue", "value": 85}},
        "address": {{"@type": "PostalAddress", "addressLocality": "Bergen", "addressCountry": "NO"}},
        "sameAs": ["https://www.linkedin.com/company/fjordline-analytics", "https://github.com/fjordline"]}},
      {{"@type": "WebSite", "name": "{name}"}}]}}</script>""" if json_ld else ""
    nav = """<nav><a href="/">Home</a> <a href="/about-us">About us</a> <a href="/services">Services</a>
      <a href="/customers">Customers</a> <a href="/contact">Contact</a> <a href="/blog/2024/launch">Blog</a>
      <a href="/privacy">Privacy</a> <a href="https://twitter.com/fjordline">Twitter</a>
      <a href="https://elsewhere.example/partner">Partner</a></nav>"""

    def page(title: str, body: str, description: str = "") -> str:
        meta = f'<meta name="description" content="{description}">' if description else ""
        return (f"<!doctype html><html><head><title>{title}</title>{meta}"
                f'<meta property="og:site_name" content="{name}"><meta name="generator" content="WordPress 6.5">'
                f"{ld if title.startswith(name) else ''}</head><body>{nav}<main>{body}</main>"
                f"<footer>© {name}</footer></body></html>")

    return {
        "/": page(f"{name} — forecasting for grocers",
                  f"<h1>{name}</h1><p>We help grocery retailers and wholesalers forecast demand, cut waste and keep "
                  "shelves full. Our platform learns from sales, weather and promotions.</p>",
                  description=f"{name}: demand forecasting software for grocery retailers."),
        "/about-us": page("About us", "<h1>About us</h1><p>Founded in Bergen in 2011, we are 85 people across "
                          "Bergen and Oslo. Our stack is Python, PostgreSQL and Kubernetes.</p>"),
        "/services": page("Services", "<h1>Services</h1><h2>Demand forecasting</h2><p>Daily forecasts per store and "
                          "item, accurate and explained.</p><h2>Replenishment planning</h2><p>Orders that follow "
                          "the forecast and the shelf.</p><h2>Markdown optimisation</h2><p>Clear fresh stock before "
                          "it spoils.</p>"),
        "/customers": page("Customers", "<h1>Customers</h1><h2>Nordic Fresh Markets</h2><p>Waste down 18%.</p>"
                           "<h2>Bakeri Hansen</h2><p>Stock-outs halved.</p>"),
        "/contact": page("Contact", '<h1>Contact</h1><p>Write to <a href="mailto:hello@fjordline.example">'
                         'hello@fjordline.example</a> or call <a href="tel:+47 55 12 34 56">+47 55 12 34 56</a>.'
                         "</p><p>Strandkaien 2, 5013 Bergen, Norway</p>"),
        "/blog/2024/launch": page("Launch", "<h1>We launched</h1><p>News.</p>"),
        "/privacy": page("Privacy", "<h1>Privacy</h1><p>Policy.</p>"),
    }


def local_business_pages(name: str = "Harrow & Lyle Accountants") -> dict[str, str]:
    """A one-page local business whose only contact details are in its JSON-LD: a LocalBusiness
    subtype (ProfessionalService) with telephone, email (as a mailto: URL), address and founding date."""
    ld = f"""<script type="application/ld+json">{{"@context": "https://schema.org",
      "@type": "ProfessionalService", "name": "{name}", "telephone": "+44 113 496 0321",
      "email": "mailto:office@harrowlyle.example", "foundingDate": "1998",
      "address": {{"@type": "PostalAddress", "streetAddress": "12 Park Row", "addressLocality": "Leeds",
                   "addressCountry": "GB"}}}}</script>"""
    return {"/": f"<!doctype html><html><head><title>{name}</title>{ld}</head><body><main><h1>{name}</h1>"
                 "<p>Bookkeeping, payroll and year-end accounts for small firms in Yorkshire.</p></main></body></html>"}
