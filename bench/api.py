"""API benchmark: `GET /api/clients/{id}` and a list page through uvicorn (2 workers), with auth,
against the same queries through raw psycopg in-process (the floor), in one run.

    .venv/bin/python bench/api.py [--clients 20000] [--seconds 10] [--concurrency 16]

- The server: `proposalflow api --workers 2` (uvicorn) in a subprocess, on a fresh database (DATABASE_URL's
  server if set, else a temporary embedded one) holding --clients clients. Production middleware:
  JSON access log lines, request ids, metrics, gzip; every request verifies an HS256 bearer token
  and answers from a pooled connection in a transaction. Rate limits are raised out of the way.
- The load: another process on loopback, a lean asyncio HTTP/1.1 client with keep-alive (httpx
  would spend more CPU per request than the server on these two cores). Phase 1, closed loop
  at --concurrency: the highest rate. Phase 2, open loop at 25 % and 50 % of that rate (requests
  started on a fixed schedule, latency measured from the scheduled start, so queueing counts):
  p50/p99 at rates the service sustains.
- The floor: the same SELECTs (by id; the first page of 50 by name) on one psycopg connection in
  this process, back to back.

PostgREST, the natural comparison, is not available on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SECRET = "benchmark-secret-that-is-long-enough-0123456789"


# --- database --------------------------------------------------------------------------------------

def fresh_database(admin_url: str, clients: int) -> tuple[str, list[str]]:
    import psycopg

    from proposalflow.migrations import migrate

    name = f"pf_bench_api_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute(
            """INSERT INTO clients (name, natural_key, website, domain, contact_info, source)
               SELECT 'Company ' || i || ' Ltd', 'domain:company' || i || '.example.com',
                      'https://company' || i || '.example.com', 'company' || i || '.example.com',
                      jsonb_build_object('email', 'info@company' || i || '.example.com', 'phone', '+1 555 ' || i,
                                         'Industry', 'Software', 'City', 'Dublin'), 'bench'
                 FROM generate_series(1, %s) i""", (clients,))
        conn.execute("ANALYZE clients")
        ids = [str(r[0]) for r in conn.execute("SELECT id FROM clients")]
    return url, ids


# --- the floor: raw psycopg in-process ---------------------------------------------------------------

def floor(url: str, ids: list[str], seconds: float) -> dict:
    import psycopg

    from proposalflow.clients.crud import _SELECT  # the very statements the API runs

    results = {}
    with psycopg.connect(url) as conn:
        for label, sql, params in (
            ("by id", f"{_SELECT} WHERE c.id = %s", lambda rng: (rng.choice(ids),)),
            ("list page", f"{_SELECT} ORDER BY c.name ASC, c.id ASC LIMIT 51", lambda rng: ()),
        ):
            rng = random.Random(1)
            latencies = []
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                t = time.perf_counter()
                conn.execute(sql, params(rng)).fetchall()
                conn.commit()
                latencies.append(time.perf_counter() - t)
            results[label] = summarise(latencies, sum(latencies))
    return results


# --- the load generator (a separate process) ---------------------------------------------------------
# A lean HTTP/1.1 keep-alive client on asyncio streams: httpx costs ~1 ms of CPU per request, which
# on two shared cores would measure the client more than the server.

class Connection:
    def __init__(self, host: str, port: int, token: str):
        self.host, self.port = host, port
        self.headers = f"Host: {host}:{port}\r\nAuthorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def get(self, path: str) -> int:
        self.writer.write(f"GET {path} HTTP/1.1\r\n{self.headers}".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(host: str, port: int, paths: list[str], token: str, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    connections = [await Connection(host, port, token).open() for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds

    async def worker(n: int) -> None:
        nonlocal errors
        rng = random.Random(n)
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            status = await connections[n].get(rng.choice(paths))
            latencies.append(time.perf_counter() - t)
            if status != 200:
                errors += 1
                statuses[status] = statuses.get(status, 0) + 1

    statuses: dict[int, int] = {}
    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    elapsed = time.perf_counter() - started
    for c in connections:
        c.close()
    return {**summarise(latencies, elapsed), "errors": errors, "error_statuses": statuses}


async def open_loop(host: str, port: int, paths: list[str], token: str, rate: float, seconds: float) -> dict:
    """Requests start on a fixed schedule (rate per second) whatever the answers do: latency counts
    from the scheduled start, so queueing in the server (or for a free connection) is included."""
    latencies: list[float] = []
    errors = 0
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened: list[Connection] = []
    count = int(rate * seconds)
    rng = random.Random(7)
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal errors
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        if idle.empty() and len(opened) < 256:
            connection = await Connection(host, port, token).open()
            opened.append(connection)
        else:
            connection = await idle.get()
        status = await connection.get(rng.choice(paths))
        latencies.append(time.perf_counter() - scheduled)
        errors += status != 200
        idle.put_nowait(connection)

    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - start
    for c in opened:
        c.close()
    return {**summarise(latencies, elapsed), "errors": errors, "offered_rate": rate, "connections": len(opened)}


def loadgen(spec: str) -> None:
    args = json.loads(spec)
    host, port = args["host"], args["port"]
    if args["mode"] == "closed":
        result = asyncio.run(closed_loop(host, port, args["paths"], args["token"], args["concurrency"], args["seconds"]))
    else:
        result = asyncio.run(open_loop(host, port, args["paths"], args["token"], args["rate"], args["seconds"]))
    print(json.dumps(result))


def run_load(**spec) -> dict:
    out = subprocess.run([sys.executable, __file__, "--loadgen", json.dumps(spec)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarise(latencies: list[float], elapsed: float) -> dict:
    ordered = sorted(latencies)
    if not ordered:
        return {"requests": 0, "per_second": 0.0, "p50_ms": None, "p99_ms": None}
    return {"requests": len(ordered), "per_second": len(ordered) / elapsed,
            "p50_ms": statistics.median(ordered) * 1000,
            "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000}


# --- the server ----------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, home: Path, port: int, workers: int, log_level: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "PROPOSALFLOW_HOME": str(home), "PROPOSALFLOW_JWT_SECRET": SECRET,
           "PROPOSALFLOW_LOG_LEVEL": log_level,
           "PROPOSALFLOW_RATE_LIMIT": "100000000/minute", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PROMETHEUS_MULTIPROC_DIR": str(home / "metrics")}
    (home / "metrics").mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "proposalflow"), "api", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning"],
        env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "w"))
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            break
        time.sleep(0.3)
    raise RuntimeError("the API did not start:\n" + (home / "server.log").read_text()[-3000:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fractions", type=lambda t: [float(x) for x in t.split(",")], default=[0.25, 0.5],
                        help="open-loop rates as fractions of the closed-loop peak (default 0.25,0.5)")
    parser.add_argument("--log-level", default="INFO", choices=["INFO", "WARNING"],
                        help="INFO (the default) writes a JSON access line per request; WARNING only for errors")
    args = parser.parse_args()

    from proposalflow.security import mint_token

    workdir = Path(tempfile.mkdtemp(prefix="pfa-", dir="/tmp"))
    embedded_home = None
    server = None
    try:
        admin_url = os.environ.get("DATABASE_URL")
        if not admin_url:
            from proposalflow.embedded import embedded_database_url

            embedded_home = workdir / "pg"
            admin_url = embedded_database_url(embedded_home)
        url, ids = fresh_database(admin_url, args.clients)
        print(f"{args.clients:,} clients in a fresh database; measuring the floor …", file=sys.stderr)
        base_figures = floor(url, ids, args.seconds / 2)

        port = free_port()
        server = start_server(url, workdir / "home", port, args.workers, args.log_level)
        token = mint_token(SECRET, email="bench@agency.test", role="viewer", ttl_seconds=3600)
        rng = random.Random(3)
        scenarios = {
            "by id": [f"/api/clients/{rng.choice(ids)}" for _ in range(2000)],
            "list page": ["/api/clients?limit=50&sort=name"],
        }
        results = {}
        for label, paths in scenarios.items():
            print(f"{label}: warm-up, closed loop at concurrency {args.concurrency} …", file=sys.stderr)
            run_load(mode="closed", host="127.0.0.1", port=port, paths=paths, token=token, concurrency=args.concurrency, seconds=2)
            peak = run_load(mode="closed", host="127.0.0.1", port=port, paths=paths, token=token, concurrency=args.concurrency,
                            seconds=args.seconds)
            steady = {}
            for fraction in args.fractions:
                rate = max(1.0, round(peak["per_second"] * fraction))
                print(f"{label}: open loop at {rate:.0f} req/s …", file=sys.stderr)
                steady[fraction] = run_load(mode="open", host="127.0.0.1", port=port, paths=paths, token=token,
                                            rate=rate, seconds=args.seconds)
            results[label] = {"peak": peak, "steady": steady}

        print(f"\nAPI vs raw psycopg, {args.clients:,} clients, uvicorn --workers {args.workers}, "
              f"PROPOSALFLOW_LOG_LEVEL={args.log_level}, load from another process on loopback (keep-alive)\n")
        header = f"{'':<10} {'':<34} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"
        print(header)
        for label in scenarios:
            r, f = results[label], base_figures[label]
            print(f"{label:<10} {'API, closed loop c=' + str(args.concurrency):<34} {r['peak']['per_second']:8.0f} "
                  f"{r['peak']['p50_ms']:8.1f} {r['peak']['p99_ms']:8.1f} {r['peak']['errors']:7d}")
            for fraction, st in r["steady"].items():
                print(f"{'':<10} {f'API, open loop at {fraction:.0%} of that':<34} {st['per_second']:8.0f} "
                      f"{st['p50_ms']:8.1f} {st['p99_ms']:8.1f} {st['errors']:7d}")
            print(f"{'':<10} {'raw psycopg, one connection':<34} {f['per_second']:8.0f} {f['p50_ms']:8.2f} "
                  f"{f['p99_ms']:8.2f}")
            low = r["steady"][min(r["steady"])]
            print(f"{'':<10} {'API / floor (peak req/s; p50)':<34} {r['peak']['per_second'] / f['per_second']:8.2f}× "
                  f"{low['p50_ms'] / f['p50_ms']:7.1f}×")
        print(json.dumps({"api": results, "floor": base_figures}), file=sys.stderr)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if embedded_home is not None:
            from proposalflow.embedded import stop_embedded_server

            stop_embedded_server(embedded_home)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--loadgen":
        loadgen(sys.argv[2])
    else:
        main()
