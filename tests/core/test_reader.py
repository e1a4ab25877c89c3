"""The web reader against local servers: a company website with faults, and a fake Jina Reader."""

from __future__ import annotations

import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from proposalflow.errors import FetchFailed, UnsafeURL
from proposalflow.reader import (DatabaseCache, DirectReader, FallbackReader, JinaReader, Page, ReaderStats,
                                 UrlGuard, make_reader)
from proposalflow.reader.limits import Limits
from proposalflow.settings import Settings
from tests.fakes.jina_server import JinaError, JinaReply, JinaServer
from tests.fakes.websites import Reply, SiteServer, company_pages


def settings(**overrides) -> Settings:
    values = {"PROPOSALFLOW_ALLOW_PRIVATE_URLS": True, "PROPOSALFLOW_READER": "direct",
              "PROPOSALFLOW_READER_TIMEOUT": 1.0, "PROPOSALFLOW_READER_HOST_RATE": 200,
              "PROPOSALFLOW_READER_ATTEMPTS": 3, "JINA_API_KEY": None}
    values.update(overrides)
    return Settings(**values)


def reader_for(s: Settings, **kwargs):
    # own limits per test, so tests do not share the process-wide budget
    limits = Limits(s.reader_host_rate, s.reader_host_burst, s.reader_concurrency,
                    s.jina_requests_per_minute if s.reader_provider == "jina" else None)
    return make_reader(s, limits=limits, **kwargs)


@pytest.fixture
def server():
    with SiteServer() as running:
        yield running


def test_direct_reader_returns_text_links_and_structured_data(server):
    site = server.add_site(company_pages())
    page = reader_for(settings()).read(site.url("/"))
    assert page.status == 200 and page.final_url == site.url("/") and page.reader == "direct"
    assert page.title == "Fjordline Analytics — forecasting for grocers"
    assert page.description == "Fjordline Analytics: demand forecasting software for grocery retailers."
    assert "forecast demand, cut waste" in page.content and "<p>" not in page.content
    assert site.url("/about-us") in page.links and "https://elsewhere.example/partner" in page.links
    organisation = next(o for o in page.structured["json_ld"] if o["@type"] == "Organization")
    assert organisation["foundingDate"] == "2011-04-01"  # @graph flattened
    assert page.structured["meta"]["generator"] == "WordPress 6.5"
    assert page.structured["opengraph"]["og:site_name"] == "Fjordline Analytics"
    contact = reader_for(settings()).read(site.url("/contact"))
    assert contact.structured["contacts"] == {"emails": ["hello@fjordline.example"], "phones": ["+47 55 12 34 56"]}


def test_429_with_retry_after_is_waited_out_then_retried(server):
    site = server.add_site({"/": "<title>ok</title><p>fine</p>"})
    site.faults["/"] = [Reply(status=429, headers={"Retry-After": "1"})]
    reader = reader_for(settings())
    started = time.monotonic()
    page = reader.read(site.url("/"))
    assert page.title == "ok"
    assert site.count("/") == 2 and reader.stats.retries == 1
    assert time.monotonic() - started >= 0.95  # Retry-After honoured, not the short backoff


def test_500_then_success_is_retried_once(server):
    site = server.add_site({"/": "<title>ok</title>"})
    site.faults["/"] = [Reply(status=500)]
    reader = reader_for(settings())
    assert reader.read(site.url("/")).title == "ok"
    assert site.count("/") == 2 and reader.stats.retries == 1


def test_persistent_503_gives_up_after_the_configured_attempts(server):
    site = server.add_site({"/": "<title>ok</title>"})
    site.faults["/"] = [Reply(status=503)] * 5
    reader = reader_for(settings(PROPOSALFLOW_READER_ATTEMPTS=3))
    with pytest.raises(FetchFailed, match="HTTP 503.*after 3 attempts") as failure:
        reader.read(site.url("/"))
    assert site.count("/") == 3 and failure.value.status == 503 and failure.value.fallback_ok


def test_a_hanging_response_times_out_and_is_retried_within_bounds(server):
    site = server.add_site({"/": Reply(body="<title>late</title>", hang=30)})
    reader = reader_for(settings(PROPOSALFLOW_READER_TIMEOUT=0.4, PROPOSALFLOW_READER_ATTEMPTS=2))
    started = time.monotonic()
    with pytest.raises(FetchFailed, match="timed out"):
        reader.read(site.url("/"))
    assert site.count("/") == 2
    assert time.monotonic() - started < 3


def test_oversized_bodies_are_refused_without_retrying(server):
    site = server.add_site({"/declared": Reply(body="x" * 300_000), "/streamed": Reply(stream_bytes=3_000_000)})
    reader = reader_for(settings(PROPOSALFLOW_READER_MAX_BYTES=100_000))
    with pytest.raises(FetchFailed, match="over the 100,000 byte limit"):
        reader.read(site.url("/declared"))
    with pytest.raises(FetchFailed, match="over the 100,000 byte limit"):
        reader.read(site.url("/streamed"))
    assert site.count("/declared") == 1 and site.count("/streamed") == 1
    assert reader.stats.bytes < 200_000  # the stream was cut, not read to the end


def test_non_html_bodies_are_refused_and_plain_text_is_read(server):
    site = server.add_site({"/report.pdf": Reply(body=b"%PDF-1.7 ...", content_type="application/pdf"),
                            "/notes.txt": Reply(body="Call +44 20 7946 0958 or ops@example.org",
                                                content_type="text/plain")})
    reader = reader_for(settings())
    with pytest.raises(FetchFailed, match="not an HTML or text page \\(content-type application/pdf\\)"):
        reader.read(site.url("/report.pdf"))
    assert site.count("/report.pdf") == 1
    text = reader.read(site.url("/notes.txt"))
    assert text.structured["contacts"] == {"emails": ["ops@example.org"], "phones": ["+44 20 7946 0958"]}


def test_private_addresses_are_refused_before_any_request(server):
    site = server.add_site({"/": "<title>internal</title>"})
    reader = reader_for(settings(PROPOSALFLOW_ALLOW_PRIVATE_URLS=False))
    for url in (site.url("/"), "http://localhost:%d/" % site.port, "http://169.254.169.254/latest/meta-data/",
                "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://10.1.2.3/", "file:///etc/passwd",
                # IPv6 forms that carry a private IPv4: 6to4 of 127.0.0.1, NAT64 of 169.254.169.254,
                # IPv4-compatible 127.0.0.1
                "http://[2002:7f00:1::1]/", "http://[64:ff9b::a9fe:a9fe]/", "http://[::7f00:1]/",
                "gopher://example.com/", "http://user:pw@example.com/"):
        with pytest.raises(UnsafeURL):
            reader.read(url)
    assert site.count() == 0 and reader.stats.requests == 0


def test_a_redirect_to_a_private_address_is_refused(server):
    """The first host is trusted (as an intranet host would be); its redirect to another local
    address is checked again and refused, and the target never sees a request."""
    internal = server.add_site({"/admin": "<title>secret</title>"})
    site = server.add_site({"/": Reply(status=302, headers={"Location": f"http://localhost:{internal.port}/admin"}),
                            "/ip": Reply(status=301, headers={"Location": internal.url("/admin")})})
    reader = reader_for(settings(PROPOSALFLOW_ALLOW_PRIVATE_URLS=False, PROPOSALFLOW_READER_TRUSTED_HOSTS=site.host))
    for path in ("/", "/ip"):
        with pytest.raises(UnsafeURL, match="non-public address"):
            reader.read(site.url(path))
    assert site.count() == 2 and internal.count() == 0
    # allowed explicitly, the same redirect is followed
    allowed = reader_for(settings(PROPOSALFLOW_ALLOW_PRIVATE_URLS=True)).read(site.url("/"))
    assert allowed.title == "secret" and allowed.final_url == f"http://localhost:{internal.port}/admin"


def test_redirects_are_capped(server):
    site = server.add_site({f"/{i}": Reply(status=302, headers={"Location": f"/{i + 1}"}) for i in range(10)})
    with pytest.raises(FetchFailed, match="more than 3 redirects"):
        reader_for(settings(PROPOSALFLOW_READER_MAX_REDIRECTS=3)).read(site.url("/0"))
    assert site.count() == 4


def test_ipv6_forms_of_public_ipv4_addresses_pass_the_guard():
    guard = UrlGuard()
    for address in ("2002:5db8:d822::1", "64:ff9b::5db8:d822", "2606:4700:4700::1111"):  # 93.184.216.34 …
        assert guard.check(f"https://[{address}]/").connect_url == f"https://[{address}]:443/"


def failing_resolver(errno: int, calls: list):
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        raise socket.gaierror(errno, "Temporary failure in name resolution" if errno == socket.EAI_AGAIN
                              else "Name or service not known")
    return resolve


def test_a_temporary_dns_failure_is_retried_and_handed_to_the_fallback_not_refused(server):
    s = settings(PROPOSALFLOW_ALLOW_PRIVATE_URLS=False, PROPOSALFLOW_READER_ATTEMPTS=2)
    limits = Limits(200, 2, 4)
    calls: list = []
    direct = DirectReader(s, guard=UrlGuard(resolver=failing_resolver(socket.EAI_AGAIN, calls)), limits=limits)
    with pytest.raises(FetchFailed, match="could not be resolved just now.*after 2 attempts") as failure:
        direct.read("https://shop.example/")
    assert failure.value.fallback_ok and len(calls) == 2 and direct.stats.retries == 1 and direct.stats.requests == 0

    # Jina (whose check hit the DNS trouble) falls back to a reader that can resolve the name
    site = server.add_site(company_pages())
    with JinaServer() as jina:
        js = jina_settings(jina, PROPOSALFLOW_ALLOW_PRIVATE_URLS=False, PROPOSALFLOW_READER_ATTEMPTS=2)
        reader = FallbackReader(JinaReader(js, guard=UrlGuard(resolver=failing_resolver(socket.EAI_AGAIN, [])),
                                           limits=limits),
                                DirectReader(js, guard=UrlGuard(allow_private=True), limits=limits))
        page = reader.read(f"http://localhost:{site.port}/")
    assert page.reader == "direct" and "could not be resolved just now" in page.structured["reader_fallback"]["reason"]
    assert jina.requests == []  # Jina is still never handed a URL that was not checked

    # a name that does not exist is a plain failure: no retry, no fallback, and not an SSRF refusal
    calls.clear()
    nxdomain = DirectReader(s, guard=UrlGuard(resolver=failing_resolver(socket.EAI_NONAME, calls)), limits=limits)
    with pytest.raises(FetchFailed, match="shop.example does not resolve") as failure:
        nxdomain.read("https://shop.example/")
    assert not isinstance(failure.value, UnsafeURL) and not failure.value.fallback_ok and len(calls) == 1


def test_the_guard_pins_the_connection_to_the_checked_public_address():
    guard = UrlGuard(resolver=lambda host, port: ["93.184.216.34"])
    target = guard.check("https://Example.com/about?x=1#team")
    assert target.connect_url == "https://93.184.216.34:443/about?x=1"
    assert (target.host_header, target.sni_hostname, target.url) == ("example.com", "example.com",
                                                                     "https://example.com/about?x=1")
    rebinding = UrlGuard(resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    with pytest.raises(UnsafeURL, match="127.0.0.1"):
        rebinding.check("https://example.com/")


def test_per_site_rate_and_global_concurrency_hold_under_load():
    with SiteServer(latency=0.05) as server:
        sites = [server.add_site({f"/{i}": "<title>p</title>" for i in range(4)}) for _ in range(6)]
        reader = reader_for(settings(PROPOSALFLOW_READER_HOST_RATE=10, PROPOSALFLOW_READER_HOST_BURST=1,
                                     PROPOSALFLOW_READER_CONCURRENCY=3))

        def read_site(site):
            for i in range(4):
                reader.read(site.url(f"/{i}"))

        threads = [threading.Thread(target=read_site, args=(s,)) for s in sites for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert server.max_in_flight <= 3
    for site in sites:  # 10 requests/s per site, burst 1, as the server saw them
        times = sorted(t for _, t in site.requests)
        assert len(times) == 8
        busiest = max(sum(1 for t in times if start <= t <= start + 0.3) for start in times)
        assert busiest <= 4, times  # unlimited, two threads put all 8 within ~0.2 s
        assert times[-1] - times[0] >= 0.55, times  # 7 intervals of 0.1 s, less connection set-up jitter


def test_the_cache_serves_fresh_pages_and_refetches_expired_ones(server, db):
    site = server.add_site({"/": "<title>cached</title><p>hello</p>"})
    fresh = DatabaseCache(db, ttl=timedelta(hours=1))
    reader = reader_for(settings(), cache=fresh)
    first, second = reader.read(site.url("/")), reader.read(site.url("/"))
    assert site.count("/") == 1 and reader.stats.cache_hits == 1
    assert not first.from_cache and second.from_cache and second.title == "cached"
    assert second.content == first.content and second.fetched_at == first.fetched_at
    row = db.execute("SELECT status, reader, length(content_hash) FROM reader_cache").fetchone()
    assert row == (200, "direct", 64)
    expired = reader_for(settings(), cache=DatabaseCache(db, ttl=timedelta(0)))
    expired.read(site.url("/"))
    assert site.count("/") == 2


def test_snapshot_rows_never_expire_and_the_live_site_is_not_fetched(server, db):
    """The demo's snapshots stand in for the sample companies' real sites: however old, they are
    served, so no later run (the daily schedule) fetches those sites. Other rows expire as before."""
    site = server.add_site({"/": "<title>live site</title>", "/news": "<title>live news</title>"})
    year_ago = datetime.now(timezone.utc) - timedelta(days=365)
    cache = DatabaseCache(db, ttl=timedelta(hours=1))
    cache.put_many([Page(url=site.url("/"), final_url=site.url("/"), status=200, title="snapshot", content="shipped",
                         fetched_at=year_ago, reader="snapshot"),
                    Page(url=site.url("/news"), final_url=site.url("/news"), status=200, title="old", content="old",
                         fetched_at=year_ago, reader="direct")])
    assert cache.fresh_keys([site.url("/"), site.url("/news")]) == {site.url("/")}
    reader = reader_for(settings(), cache=cache)
    home, news = reader.read(site.url("/")), reader.read(site.url("/news"))
    assert (home.title, home.from_cache, home.reader) == ("snapshot", True, "snapshot")
    assert (news.title, news.from_cache) == ("live news", False)
    assert site.count("/") == 0 and site.count("/news") == 1


def test_expired_rows_are_deleted_but_snapshots_and_fresh_rows_stay(db):
    now = datetime.now(timezone.utc)
    cache = DatabaseCache(db, ttl=timedelta(hours=24))
    cache.put_many([Page(url=f"https://{name}.example/", final_url=f"https://{name}.example/", status=200,
                         fetched_at=now - age, reader=reader)
                    for name, age, reader in (("old", timedelta(days=2), "direct"), ("oldjina", timedelta(days=9), "jina"),
                                              ("fresh", timedelta(hours=1), "direct"),
                                              ("demo", timedelta(days=400), "snapshot"))])
    assert cache.delete_expired() == 2
    assert sorted(r[0] for r in db.execute("SELECT url FROM reader_cache")) == ["https://demo.example/",
                                                                                "https://fresh.example/"]
    assert cache.delete_expired() == 0


# --- Jina Reader ------------------------------------------------------------------------------------

def jina_settings(jina: JinaServer, **overrides) -> Settings:
    return settings(**{"PROPOSALFLOW_READER": "jina", "JINA_API_KEY": "jina-test-key", "JINA_READER_URL": jina.base_url,
                       "PROPOSALFLOW_JINA_RPM": 6000, **overrides})


def test_jina_reader_reads_its_json_format_with_the_documented_headers(server):
    site = server.add_site(company_pages())
    with JinaServer() as jina:
        page = reader_for(jina_settings(jina)).read(site.url("/contact"))
    target, headers = jina.requests[0]
    assert target == site.url("/contact")
    assert headers["Authorization"] == "Bearer jina-test-key" and headers["Accept"] == "application/json"
    assert headers["X-Return-Format"] == "markdown" and headers["X-Timeout"] == "1"
    assert page.reader == "jina" and page.title == "Contact" and page.final_url == site.url("/contact")
    assert site.url("/services") in page.links
    assert page.structured["contacts"]["emails"] == ["hello@fjordline.example"]


def test_jina_markdown_and_metadata_land_where_the_direct_reader_puts_them(server):
    site = server.add_site(company_pages())
    with JinaServer() as jina:
        page = reader_for(jina_settings(jina)).read(site.url("/services"))
    assert "## Demand forecasting" in page.content and f"[About us]({site.url('/about-us')})" in page.content
    assert page.structured["opengraph"] == {"og:site_name": "Fjordline Analytics"}
    assert page.structured["meta"] == {"generator": "WordPress 6.5"}
    with JinaServer(render=lambda url: {"title": "", "url": url, "content": "# Hi",
                                        "metadata": {"og:title": "From OG", "og:description": "About us, per OG",
                                                     "viewport": "width=device-width", "lang": "en"}}) as jina:
        page = reader_for(jina_settings(jina)).read(site.url("/"))
    assert (page.title, page.description) == ("From OG", "About us, per OG")
    assert page.structured["opengraph"] == {"og:title": "From OG", "og:description": "About us, per OG"}
    assert "meta" not in page.structured  # viewport, lang: not page facts


def test_a_hanging_jina_times_out_then_falls_back(server):
    site = server.add_site(company_pages())
    with JinaServer(faults=[JinaReply(hang=30, body=b"{}")]) as jina:
        reader = reader_for(jina_settings(jina, PROPOSALFLOW_READER_TIMEOUT=0.2, PROPOSALFLOW_READER_ATTEMPTS=1))
        started = time.monotonic()
        page = reader.read(site.url("/"))
        waited = time.monotonic() - started
    # Jina's time limit per attempt is the page timeout + 5 s (Jina's own work); then the direct reader
    assert page.reader == "direct" and "timed out" in page.structured["reader_fallback"]["reason"]
    assert len(jina.requests) == 1 and reader.stats.fallbacks == 1
    assert 5.2 <= waited < 8


def test_a_jina_answer_that_is_not_its_json_falls_back(server):
    site = server.add_site(company_pages())
    html = b"<html><body>Just a moment... (a challenge page, not Jina's JSON)</body></html>"
    with JinaServer(faults=[JinaReply(body=html, content_type="text/html")]) as jina:
        reader = reader_for(jina_settings(jina))
        page = reader.read(site.url("/"))
    assert len(jina.requests) == 1 and reader.stats.fallbacks == 1  # not retried: the next answer would be the same
    assert page.reader == "direct" and "not its JSON format" in page.structured["reader_fallback"]["reason"]
    assert page.title == "Fjordline Analytics — forecasting for grocers"


def test_jina_429_with_retry_after_is_retried(server):
    site = server.add_site(company_pages())
    with JinaServer(faults=[JinaError.rate_limited(retry_after=1)]) as jina:
        reader = reader_for(jina_settings(jina))
        started = time.monotonic()
        page = reader.read(site.url("/"))
    assert page.reader == "jina" and len(jina.requests) == 2 and reader.stats.retries == 1
    assert time.monotonic() - started >= 0.95 and reader.stats.fallbacks == 0


def test_jina_402_falls_back_to_the_direct_reader(server):
    site = server.add_site(company_pages())
    with JinaServer(faults=[JinaError.insufficient_balance()]) as jina:
        reader = reader_for(jina_settings(jina))
        page = reader.read(site.url("/"))
    assert len(jina.requests) == 1  # 402 is not retried
    assert page.reader == "direct" and reader.stats.fallbacks == 1
    assert "InsufficientBalanceError" in page.structured["reader_fallback"]["reason"]
    assert page.structured["json_ld"]  # the direct reader's structured data


@pytest.mark.parametrize("status, tries", [(500, 3), (524, 3), (501, 1)])
def test_jina_5xx_after_retries_falls_back_and_451_too(server, status, tries):
    """Transient 5xx (500, Cloudflare's 524 …) are retried, then the direct reader takes over; a
    5xx that retrying will not fix (501) falls back at once."""
    site = server.add_site(company_pages())
    with JinaServer(faults=[JinaError.server_error(status)] * tries + [JinaError.unavailable_for_legal_reasons()]) as jina:
        reader = reader_for(jina_settings(jina, PROPOSALFLOW_READER_ATTEMPTS=3))
        page = reader.read(site.url("/"))
        assert page.reader == "direct" and f"HTTP {status}" in page.structured["reader_fallback"]["reason"]
        assert len(jina.requests) == tries and reader.stats.retries == tries - 1
        assert reader.read(site.url("/about-us")).reader == "direct"
    assert len(jina.requests) == tries + 1 and reader.stats.fallbacks == 2


def wait_for(condition, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@pytest.mark.parametrize("declare_length", [False, True], ids=["chunked", "content-length"])
def test_an_oversized_jina_answer_is_cut_off_while_downloading(server, declare_length):
    """50 MB from Jina against a 100 kB cap: refused on the declared length or after ~100 kB of a
    chunked answer — the reader hangs up and the server never gets to send the rest."""
    site = server.add_site(company_pages())
    size = 50_000_000
    with JinaServer(faults=[JinaReply(stream_bytes=size, declare_length=declare_length)]) as jina:
        reader = reader_for(jina_settings(jina, PROPOSALFLOW_READER_MAX_BYTES=100_000))
        with pytest.raises(FetchFailed, match="over the 100,000 byte limit"):
            reader.read(site.url("/"))
        assert wait_for(lambda: jina.aborted == 1), (jina.aborted, jina.bytes_sent)
    assert len(jina.requests) == 1 and reader.stats.fallbacks == 0  # not retried, not handed on
    assert reader.stats.bytes < 300_000 and jina.bytes_sent < size / 2


def test_jina_failing_on_the_target_is_not_hidden_by_a_fallback(server):
    site = server.add_site(company_pages())
    with JinaServer() as jina:
        reader = reader_for(jina_settings(jina))
        with pytest.raises(FetchFailed, match="Jina Reader answered HTTP 422"):
            reader.read(site.url("/missing"))
    assert reader.stats.fallbacks == 0


def test_jina_is_not_handed_private_urls(server):
    site = server.add_site(company_pages())
    with JinaServer() as jina:
        reader = reader_for(jina_settings(jina, PROPOSALFLOW_ALLOW_PRIVATE_URLS=False))
        with pytest.raises(UnsafeURL):
            reader.read(site.url("/"))
    assert jina.requests == []


def test_stats_are_shared_across_the_layers(server, db):
    site = server.add_site(company_pages())
    stats = ReaderStats()
    with JinaServer(faults=[JinaError.insufficient_balance()]) as jina:
        reader = reader_for(jina_settings(jina), cache=DatabaseCache(db, timedelta(hours=1)), stats=stats)
        reader.read(site.url("/"))
        reader.read(site.url("/"))
    assert (stats.fallbacks, stats.cache_hits, stats.fetched, stats.requests) == (1, 1, 1, 2)


def test_jina_requests_per_minute_are_respected_across_sites(server):
    sites = [server.add_site(company_pages()) for _ in range(3)]
    with JinaServer() as jina:
        reader = reader_for(jina_settings(jina, PROPOSALFLOW_JINA_RPM=120))  # 2 per second, over all sites
        started = time.monotonic()
        threads = [threading.Thread(target=reader.read, args=(site.url("/"),)) for site in sites]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(jina.requests) == 3 and time.monotonic() - started >= 0.95
