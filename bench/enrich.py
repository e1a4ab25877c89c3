"""Client enrichment benchmark: the project's concurrent enrichment vs a sequential loop, in one run.

    .venv/bin/python bench/enrich.py [--clients 200] [--latency 0.05] [--host-rate 5] [--concurrency 16]

200 synthetic clients, each with its own website (4-5 pages, from bench/make_site_snapshots.py's
builder) on a local server — in a child process, so its request log is not skewed by the
benchmark's CPU work — that answers every page after `--latency` seconds (50 ms). Each site is
its own host:port, so the per-site rate limit applies per client as it would on the internet.

- project: `enrich_batch` — what each enrich-clients task runs — over all clients, `--concurrency`
  clients at a time; the reader's shared limits pace every request (per-site rate, global cap on
  requests in flight).
- sequential: the same reader and extraction, one client after the other (`enrich_client` in a loop,
  outcome recorded after each) — the straightforward script.

Both read from the network (no cache), record outcomes in the same database, and use the same
per-site rate (`--host-rate` requests/s, burst 2; the product's default is 1/s, which makes the
sequential baseline take ~10 minutes). Afterwards the server's own request log is checked: the
most requests any one site received within any 0.5-second window must stay within what the
limit allows (burst + rate × 0.5 = 4), and requests in flight never exceeded the cap. A third,
control run repeats the project run with the per-site rate switched off, to show the check notices
a violation (it must). Also shown: how far ahead of the exact
GCRA schedule a request arrived at worst: the limiter books a slot when it hands the request to the
HTTP client; the first request to a site also opens the TCP connection, so it arrives later than
booked and the next one (on the open connection) can arrive up to that much closer than the
interval. That spread is the connection set-up time on a loaded machine, not extra requests.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from make_site_snapshots import INDUSTRIES, build_site  # noqa: E402

CITIES = [("Austin", "USA"), ("Dublin", "Ireland"), ("Hamburg", "Germany"), ("Brisbane", "Australia"),
          ("Toronto", "Canada"), ("Valencia", "Spain")]


WINDOW = 0.5  # seconds: GCRA(rate, burst) allows at most burst + floor(rate × WINDOW) requests in any such window


def busiest_window(times: list[float], window: float = WINDOW) -> int:
    """The most requests one site received within any `window` seconds (sliding)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] < t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def earliness(times: list[float], rate: float, burst: int) -> float:
    """How much earlier than GCRA(rate, burst) allows the earliest request came (0: conforming),
    from the request times the server saw for one site."""
    interval, tolerance = 1.0 / rate, (burst - 1) / rate
    tat, worst = None, 0.0
    for t in sorted(times):
        tat = t if tat is None else tat
        worst = max(worst, tat - tolerance - t)
        tat = max(tat, t) + interval
    return worst


def serve_sites(conn, count: int, latency: float) -> None:
    """Child process: the websites, so their request log is not skewed by the benchmark's own
    CPU work (one GIL). Answers commands over `conn`: clear, log, stop."""
    from tests.fakes.websites import SiteServer

    industries = list(INDUSTRIES)
    with SiteServer(latency=latency) as server:
        urls, pages = [], 0
        for i in range(count):
            city, country = CITIES[i % len(CITIES)]
            company = {"name": f"Bench Company {i}", "industry": industries[i % len(industries)],
                       "city": city, "country": country}
            site = server.add_site(build_site(company, home_url=f"http://bench{i}.example", seed=str(i)))
            urls.append(site.url("/"))
            pages += len(site.pages)
        conn.send((urls, pages))
        while True:
            command = conn.recv()
            if command == "clear":
                for site in server.sites:
                    site.requests.clear()
                server.max_in_flight = 0
                conn.send(True)
            elif command == "log":
                conn.send(([[t for _, t in site.requests] for site in server.sites], server.max_in_flight))
            else:
                conn.send(True)
                return


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--host-rate", type=float, default=5.0)
    parser.add_argument("--host-burst", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    import psycopg

    from proposalflow.enrichment.enrich import enrich_batch, enrich_client
    from proposalflow.enrichment.store import ClientSite, record_outcome
    from proposalflow.migrations import migrate
    from proposalflow.reader import make_reader
    from proposalflow.reader.limits import Limits
    from proposalflow.settings import Settings
    home = None
    admin_url = os.environ.get("DATABASE_URL")
    if not admin_url:
        from proposalflow.embedded import embedded_database_url

        home = Path(tempfile.mkdtemp(prefix="pfb-", dir="/tmp"))
        admin_url = embedded_database_url(home)
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("fork").Process(target=serve_sites, args=(child, args.clients, args.latency),
                                                         daemon=True)
    server.start()
    try:
        urls, pages_total = parent.recv()
        settings = Settings(PROPOSALFLOW_ALLOW_PRIVATE_URLS=True, PROPOSALFLOW_READER="direct", JINA_API_KEY=None,
                            PROPOSALFLOW_LLM="offline", PROPOSALFLOW_READER_HOST_RATE=args.host_rate,
                            PROPOSALFLOW_READER_HOST_BURST=args.host_burst,
                            PROPOSALFLOW_READER_CONCURRENCY=args.concurrency)
        print(f"{args.clients} clients, {pages_total} pages, {args.latency * 1000:.0f} ms per page, "
              f"per-site rate {args.host_rate:g}/s burst {args.host_burst}, concurrency {args.concurrency}",
              flush=True)
        results = {}
        for approach in ("project", "sequential", "control"):
            url = fresh_database(admin_url)
            with psycopg.connect(url, autocommit=True) as conn:
                migrate(conn)
                clients = []
                for i, site_url in enumerate(urls):
                    name = f"Bench Company {i}"
                    row = conn.execute("INSERT INTO clients (name, natural_key, website) VALUES (%s, %s, %s) "
                                       "RETURNING id::text", (name, f"name:{uuid.uuid4()}", site_url)).fetchone()
                    clients.append(ClientSite(row[0], name, site_url))
                parent.send("clear")
                parent.recv()
                limits = Limits(args.host_rate, args.host_burst, args.concurrency)
                if approach == "control":  # no per-site rate: shows that the check below notices
                    limits = Limits(1000.0, 1000, args.concurrency)
                reader = make_reader(settings, limits=limits)
                started = time.perf_counter()
                if approach in ("project", "control"):
                    outcomes = enrich_batch(conn, clients, reader, concurrency=args.concurrency)
                else:
                    outcomes = []
                    for client in clients:
                        outcome = enrich_client(client, reader)
                        record_outcome(conn, outcome.client_id, outcome.status, outcome.error,
                                       outcome.company.to_stored() if outcome.company else None)
                        outcomes.append(outcome)
                seconds = time.perf_counter() - started
                reader.close()
            parent.send("log")
            logs, max_in_flight = parent.recv()
            results[approach] = {
                "seconds": seconds, "pages": reader.stats.fetched, "requests": sum(len(log) for log in logs),
                "ok": sum(o.status == "ok" for o in outcomes), "facts": sum(o.fact_count for o in outcomes),
                "busiest": max(busiest_window(log) for log in logs),
                "early_ms": max(earliness(log, args.host_rate, args.host_burst) for log in logs) * 1000,
                "max_in_flight": max_in_flight,
            }
            print(f"  {approach}: {seconds:.1f} s", flush=True)
    finally:
        parent.send("stop")
        server.join(10)
        if home:
            from proposalflow.embedded import stop_embedded_server

            stop_embedded_server(home)
            shutil.rmtree(home, ignore_errors=True)

    base = results["sequential"]["seconds"]
    print()
    allowed = args.host_burst + int(args.host_rate * WINDOW)
    print(f"| approach | seconds | pages | pages/s | clients ok | facts | max requests to one site in any "
          f"{WINDOW:g} s (allowed {allowed}) | worst arrival ahead of the GCRA schedule | max in flight "
          f"(cap {args.concurrency}) | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['seconds']:.1f} | {r['pages']} | {r['pages'] / r['seconds']:.1f} | {r['ok']} | "
              f"{r['facts']} | {r['busiest']} | {r['early_ms']:.0f} ms | {r['max_in_flight']} | "
              f"{base / r['seconds']:.1f}× |")
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    if (any(results[a]["busiest"] > allowed for a in ("project", "sequential"))
            or results["project"]["max_in_flight"] > args.concurrency):
        sys.exit("rate limit exceeded")
    if results["control"]["busiest"] <= allowed:
        sys.exit("the control run without a per-site rate stayed within it: the check proves nothing")


def fresh_database(admin_url: str) -> str:
    import psycopg
    from urllib.parse import urlsplit

    name = f"pf_bench_enrich_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return urlsplit(admin_url)._replace(path=f"/{name}").geturl()


if __name__ == "__main__":
    main()
