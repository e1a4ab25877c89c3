"""Client ingestion benchmark: this project vs raw COPY + upsert vs pandas.to_sql, in one run.

    .venv/bin/python bench/ingest.py [--rows 100000] [--only project]

Each approach runs in its own subprocess (so its peak RSS is its own) against its own fresh
database on the same server: DATABASE_URL's server if set, else a temporary embedded one.

- project: proposalflow's core ingestion (stage_source + apply_run): streaming read,
  normalisation, Great Expectations validation, binary COPY into staging, one upsert. This is
  what the ingest-clients flow runs inside its tasks; the flow adds Prefect's per-task overhead
  (tens of ms) and, without PREFECT_API_URL, the temporary server's start-up.
- raw COPY: the floor — csv.reader, the natural key only, psycopg binary COPY into a temp table,
  then the same INSERT … ON CONFLICT into clients. No validation, no normalisation, no rejects.
- pandas.to_sql: pandas.read_csv, then DataFrame.to_sql through SQLAlchemy (chunks of 10,000, the
  default INSERT method) into a table of the same columns.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

INDUSTRIES = ["Healthcare", "Logistics", "Legal services", "Retail", "Software", "Construction", "Hospitality"]
CITIES = ["Austin", "Boston", "Denver", "Seattle", "Toronto", "Dublin", "Manchester", "Brisbane"]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(42)
    with path.open("w", encoding="utf-8") as fh:
        fh.write("Company Name,Website,E-mail,Phone,Industry,City\n")
        for i in range(rows):
            domain = f"company{i}.example.com"
            website = rng.choice([domain, f"www.{domain}", f"https://{domain}/"])
            email = f"info@{domain}" if i % 997 else "not-an-email"  # ~0.1% rejects
            fh.write(f"Company {i} Ltd,{website},{email},+1 555 {i % 10000:04d},"
                     f"{rng.choice(INDUSTRIES)},{rng.choice(CITIES)}\n")


# --- the three approaches, each run in a child process ---------------------------------------------

def run_project(url: str, path: Path) -> dict:
    from collections import Counter

    import psycopg

    from proposalflow.clients.ingest import apply_run, stage_source
    from proposalflow.clients.sources import LocalSource
    from proposalflow.clients.validation import warm_up

    warm_up()  # importing Great Expectations (~3 s) is start-up, not per-file work
    timings: Counter = Counter()
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        staged = stage_source(conn, LocalSource(path, path.name), timings=timings)
        t = time.perf_counter()
        summary = apply_run(conn, staged.run_id)
        timings["upsert"] += time.perf_counter() - t
    return {"seconds": time.perf_counter() - started, "inserted": summary.inserted,
            "rejected": summary.rejected, "split": dict(timings)}


_UPSERT_FROM_TEMP = """
INSERT INTO clients AS c (natural_key, name, website, domain, contact_info, source)
SELECT natural_key, name, website, domain, contact_info, 'bench' FROM incoming
ON CONFLICT (natural_key) DO UPDATE SET name = EXCLUDED.name, website = EXCLUDED.website,
    domain = EXCLUDED.domain, contact_info = c.contact_info || EXCLUDED.contact_info
WHERE (c.name, c.website, c.domain, c.contact_info)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.website, EXCLUDED.domain, c.contact_info || EXCLUDED.contact_info)
"""


def run_raw_copy(url: str, path: Path) -> dict:
    import csv

    import psycopg
    from psycopg.types.json import Jsonb

    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TEMP TABLE incoming (natural_key text, name text, website text, domain text,"
                     " contact_info jsonb) ON COMMIT DROP")
        seen = set()
        with path.open(encoding="utf-8", newline="") as fh, conn.cursor().copy(
                "COPY incoming FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "text", "jsonb"])
            reader = csv.reader(fh)
            next(reader)
            for name, website, email, phone, industry, city in reader:
                domain = website.removeprefix("https://").removeprefix("www.").rstrip("/")
                if domain in seen:
                    continue
                seen.add(domain)
                copy.write_row((f"domain:{domain}", name, f"https://{domain}", domain,
                                Jsonb({"email": email, "phone": phone, "Industry": industry, "City": city})))
        inserted = conn.execute(_UPSERT_FROM_TEMP).rowcount
    return {"seconds": time.perf_counter() - started, "inserted": inserted}


def run_to_sql(url: str, path: Path) -> dict:
    import pandas as pd
    import sqlalchemy

    started = time.perf_counter()
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    frame = pd.read_csv(path, dtype=str)
    frame.to_sql("clients_to_sql", engine, if_exists="replace", index=False, chunksize=10_000)
    engine.dispose()
    return {"seconds": time.perf_counter() - started, "inserted": len(frame)}


APPROACHES = {"project": run_project, "raw COPY + upsert": run_raw_copy, "pandas.to_sql": run_to_sql}


def child(approach: str, url: str, path: str) -> None:
    result = APPROACHES[approach](url, Path(path))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# --- orchestration ---------------------------------------------------------------------------------

def fresh_database(admin_url: str) -> str:
    import psycopg

    from proposalflow.migrations import migrate

    name = f"pf_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = urlsplit(admin_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", choices=list(APPROACHES), action="append")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pfb-", dir="/tmp"))
    home = None
    try:
        admin_url = os.environ.get("DATABASE_URL")
        if not admin_url:
            from proposalflow.embedded import embedded_database_url

            home = workdir / "h"
            admin_url = embedded_database_url(home)
        path = workdir / "clients.csv"
        t = time.perf_counter()
        write_csv(path, args.rows)
        print(f"{args.rows:,} rows, {path.stat().st_size / 1e6:.1f} MB CSV written in {time.perf_counter() - t:.1f} s",
              file=sys.stderr)

        results = {}
        for approach in args.only or APPROACHES:
            url = fresh_database(admin_url)
            print(f"running {approach} …", file=sys.stderr)
            out = subprocess.run([sys.executable, __file__, "--child", approach, url, str(path)],
                                 capture_output=True, text=True, check=True)
            results[approach] = json.loads(out.stdout.strip().splitlines()[-1])

        print(f"\nclient ingestion, {args.rows:,} rows (one run, same server)\n")
        print(f"{'approach':<20} {'seconds':>8} {'rows/s':>10} {'peak RSS':>10}  vs project")
        base = results.get("project", {}).get("seconds")
        for approach, r in results.items():
            ratio = f"{r['seconds'] / base:5.2f}×" if base else ""
            print(f"{approach:<20} {r['seconds']:8.2f} {args.rows / r['seconds']:10,.0f} "
                  f"{r['peak_rss_mb']:8.0f} MB  {ratio}")
        if "project" in results:
            split = results["project"]["split"]
            print("\nproject split: " + ", ".join(f"{k} {v:.2f} s" for k, v in split.items()))
            raw = results.get("raw COPY + upsert")
            if raw:
                print(f"project / raw COPY = {base / raw['seconds']:.2f} (target ≤ 2)")
            to_sql = results.get("pandas.to_sql")
            if to_sql:
                print(f"pandas.to_sql / project = {to_sql['seconds'] / base:.2f} (target ≥ 5)")
    finally:
        if home is not None:
            from proposalflow.embedded import stop_embedded_server

            stop_embedded_server(home)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
