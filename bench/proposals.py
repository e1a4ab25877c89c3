"""Proposal-generation benchmark, in one run against the local OpenAI-compatible server:

    .venv/bin/python bench/proposals.py [--proposals 20] [--latency 1.0] [--concurrency 10]

1. Pipeline overhead with instant model answers: the whole graph (load client, plan, retrieve +
   draft six sections in parallel, check, assemble, save, PostgreSQL checkpoints after every step)
   per proposal, against the baseline of the same eight structured-output requests sent straight
   to the model with the same ChatOpenAI client (plan, six drafts in parallel, summary) — nothing
   else. Overhead = pipeline − baseline. The offline composer's time per proposal is shown too.
2. Latency: every model call answers after `--latency` seconds. One proposal through the
   generate-proposal flow, then `--proposals` proposals (one per client) in ONE generate-proposals
   batch run; target: the batch takes at most 3× the one.

The database is the embedded PostgreSQL (or DATABASE_URL's server, in a new database) with the
sample knowledge base embedded by the local model; Prefect is a temporary local server unless
PREFECT_API_URL is set. Peak RSS is this process's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def setup_database(stack: ExitStack) -> str:
    import psycopg

    from proposalflow.migrations import migrate

    admin = os.environ.get("DATABASE_URL")
    if not admin:
        from proposalflow.embedded import embedded_database_url, stop_embedded_server

        home = Path(tempfile.mkdtemp(prefix="pfb-", dir="/tmp"))
        admin = embedded_database_url(home)
        stack.callback(stop_embedded_server, home)
    name = f"pf_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = urlsplit(admin)._replace(path=f"/{name}").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
    return url


def load_knowledge_and_clients(url: str, clients: int) -> list[str]:
    import psycopg

    from proposalflow.knowledge.documents import folder_sources
    from proposalflow.knowledge.embedders import make_embedder
    from proposalflow.knowledge.ingest import add_documents
    from proposalflow.settings import Settings

    with psycopg.connect(url, autocommit=True) as conn:
        add_documents(conn, make_embedder(Settings(PROPOSALFLOW_EMBEDDINGS="local")),
                      folder_sources(REPO / "proposalflow" / "data" / "knowledge"))
        rows = conn.execute(
            """INSERT INTO clients (name, natural_key) SELECT 'Bench client ' || i, 'name:bench client ' || i
                 FROM generate_series(1, %s) i RETURNING id""", (clients,)).fetchall()
    return [str(r[0]) for r in rows]


def settings_for(server):
    from proposalflow.settings import Settings

    return Settings(PROPOSALFLOW_LLM="openai", OPENAI_API_KEY="bench", OPENAI_BASE_URL=server.base_url,
                    PROPOSALFLOW_EMBEDDINGS="local")


def baseline_calls(server) -> float:
    """The same eight requests with no pipeline: plan, six drafts in parallel, summary."""
    from langchain_openai import ChatOpenAI

    from proposalflow.proposals import prompts

    llm = ChatOpenAI(model="gpt-4o", api_key="bench", base_url=server.base_url, max_retries=0)
    plan = llm.with_structured_output(prompts.Outline, method="json_schema", include_raw=True)
    draft = llm.with_structured_output(prompts.SectionDraft, method="json_schema", include_raw=True)
    summary = llm.with_structured_output(prompts.Summary, method="json_schema", include_raw=True)
    ids = ["understanding", "approach", "services", "evidence", "pricing", "next_steps"]
    started = time.perf_counter()
    plan.invoke([("system", prompts.SYSTEM), ("human", "Sections of the template:\n"
                                                      + "\n".join(f"- id {i}: {i.title()} — x" for i in ids))])
    with ThreadPoolExecutor(len(ids)) as pool:
        list(pool.map(lambda i: draft.invoke([("human", f'Write the section "{i}" (id {i}) of our proposal.')]), ids))
    summary.invoke([("human", "Write the title and the executive summary.")])
    return time.perf_counter() - started


def per_proposal(fn, runs: int) -> tuple[float, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times)


def main() -> None:
    import logging

    for noisy in ("httpx", "httpx2", "openai", "prefect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--proposals", type=int, default=20)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=None, help="batch concurrency (default: the setting, 10)")
    parser.add_argument("--runs", type=int, default=5, help="proposals timed for the overhead figure")
    args = parser.parse_args()

    import psycopg

    from proposalflow.proposals import service
    from proposalflow.proposals.composer import OfflineComposer
    from proposalflow.settings import get_settings
    from tests.fakes.openai_server import OpenAIServer
    from tests.proposals_support import ScriptedModel

    with ExitStack() as stack:
        url = setup_database(stack)
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("PROPOSALFLOW_HOME", tempfile.mkdtemp(prefix="pfb-home-"))
        os.environ["PROPOSALFLOW_EMBEDDINGS"] = "local"
        get_settings.cache_clear()
        t = time.perf_counter()
        clients = load_knowledge_and_clients(url, args.proposals + 2 * args.runs + 4)
        print(f"setup: knowledge embedded, {len(clients)} clients ({time.perf_counter() - t:.1f} s)", file=sys.stderr)
        conn = stack.enter_context(psycopg.connect(url, autocommit=True))
        pool = iter(clients)

        # 1. overhead with instant answers
        server = stack.enter_context(OpenAIServer(ScriptedModel()))
        settings = settings_for(server)
        service.generate(conn, next(pool), settings=settings)  # warm-up: imports, embedder, first connections
        baseline_calls(server)
        pipeline, pipeline_min = per_proposal(lambda: service.generate(conn, next(pool), settings=settings), args.runs)
        bare, bare_min = per_proposal(lambda: baseline_calls(server), args.runs)
        offline, _ = per_proposal(lambda: service.generate(conn, next(pool), settings=settings,
                                                           writer=OfflineComposer()), args.runs)

        # 2. with latency: one through the flow, then a batch through the batch flow
        from prefect.settings import PREFECT_API_URL

        if not os.environ.get("PREFECT_API_URL"):
            from prefect.testing.utilities import prefect_test_harness

            stack.enter_context(prefect_test_harness(server_startup_timeout=120))
        print(f"prefect: {PREFECT_API_URL.value()}", file=sys.stderr)
        slow = stack.enter_context(OpenAIServer(ScriptedModel(), latency=args.latency))
        os.environ.update(PROPOSALFLOW_LLM="openai", OPENAI_API_KEY="bench", OPENAI_BASE_URL=slow.base_url)
        get_settings.cache_clear()
        from flows.generate_proposal import generate_proposal, generate_proposals

        generate_proposal(next(pool))  # warm-up: the first flow run of a process pays Prefect's start-up
        started = time.perf_counter()
        one = generate_proposal(next(pool))
        one_seconds = time.perf_counter() - started
        batch_clients = [next(pool) for _ in range(args.proposals)]
        requests_before = slow.count("/chat/completions")
        started = time.perf_counter()
        batch = generate_proposals(client_ids=batch_clients, concurrency=args.concurrency)
        batch_seconds = time.perf_counter() - started
        calls = slow.count("/chat/completions") - requests_before
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        concurrency = args.concurrency or get_settings().proposal_batch_concurrency

    print()
    print("1. Pipeline overhead, instant model answers (median of", args.runs, "proposals)")
    print(f"   {'':44} {'seconds':>9}")
    print(f"   {'pipeline: generate() with graph, DB, checkpoints':44} {pipeline:9.3f}   (best {pipeline_min:.3f})")
    print(f"   {'baseline: the same 8 model calls, bare':44} {bare:9.3f}   (best {bare_min:.3f})")
    print(f"   {'overhead per proposal (target <= 1 s)':44} {pipeline - bare:9.3f}")
    print(f"   {'offline composer, whole proposal':44} {offline:9.3f}")
    print()
    print(f"2. Model latency {args.latency:.1f} s per call")
    print(f"   {'one proposal (generate-proposal flow)':44} {one_seconds:9.2f}   ({one['token_usage']['calls']} calls)")
    print(f"   {f'{args.proposals} proposals, one batch (concurrency {concurrency})':44} {batch_seconds:9.2f}"
          f"   ({calls} calls, {batch['generated']} written, {batch['failed']} failed)")
    print(f"   {'batch / one (target <= 3x)':44} {batch_seconds / one_seconds:9.2f}x")
    print(f"   {f'baseline: {args.proposals} one after another (computed)':44} {args.proposals * one_seconds:9.2f}")
    print(f"   peak RSS {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
