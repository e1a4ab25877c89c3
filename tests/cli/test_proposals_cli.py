"""`proposalflow propose` and `proposalflow proposal …` as a user runs them: subprocesses, stdout/stderr,
exit codes — offline, against the local OpenAI-compatible server, and killed in the middle."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from tests.fakes.openai_server import OpenAIServer
from tests.proposals_support import ScriptedModel, knowledge_database, requests_for, section_of
from tests.support import PROPOSALFLOW, run_cli


@pytest.fixture
def kb_env(pg_admin_url, template_url, prefect_api_url, tmp_path):
    url = knowledge_database(pg_admin_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "JINA", "GOOGLE", "PROPOSALFLOW"))}
    env.update(DATABASE_URL=url, PROPOSALFLOW_HOME=str(tmp_path / "home"), PREFECT_API_URL=prefect_api_url,
               PROPOSALFLOW_EMBEDDINGS="local", COLUMNS="120")
    return env


def with_model(env: dict, server) -> dict:
    return {**env, "PROPOSALFLOW_LLM": "openai", "OPENAI_API_KEY": "test", "OPENAI_BASE_URL": server.base_url,
            "PROPOSALFLOW_PROPOSAL_RETRY_SECONDS": "0.1"}


def test_propose_offline_then_show_review_and_revise(kb_env, tmp_path):
    brief = tmp_path / "brief.md"
    brief.write_text("We need more qualified leads from shippers in the Pacific Northwest.\n")
    result = run_cli(["propose", "northwind", "--brief", str(brief)], kb_env)
    assert "Our understanding of your needs" in result.stdout and "Investment and timeline" in result.stdout
    assert "References" in result.stdout and "https://northwindlogistics.com/about" in result.stdout
    assert "no language model wrote this" in result.stdout
    proposal_id = re.search(r"proposal ([0-9a-f-]{36}) · version 1 of 1 · status draft", result.stdout).group(1)
    shown = json.loads(run_cli(["proposal", "show", proposal_id, "--json"], kb_env).stdout)
    assert shown["status"] == "draft" and shown["version"] == 1 and shown["content"]["metadata"]["offline"]
    with psycopg.connect(kb_env["DATABASE_URL"]) as conn:
        cited = {r["chunk_id"] for r in shown["content"]["references"] if r["kind"] == "chunk"}
        stored = {r[0] for r in conn.execute("SELECT id FROM knowledge_chunks WHERE id = ANY(%s)", (list(cited),))}
    assert cited and cited == stored
    assert json.loads(run_cli(["proposal", "status", proposal_id, "in_review", "--json"], kb_env).stdout) == \
        {"proposal_id": proposal_id, "from": "draft", "to": "in_review", "next": ["approved", "draft", "rejected"]}
    refused = run_cli(["proposal", "status", proposal_id, "sent", "--json"], kb_env, check=False)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"] == {
        "type": "conflict", "errors": [],
        "message": f"proposal {proposal_id}: cannot set status 'sent' by hand: only delivery moves a proposal to "
                   "'sent' (deliver-proposal, proposalflow.proposals.status.mark_sent)"}
    revised = json.loads(run_cli(["proposal", "revise", proposal_id, "Make the pricing shorter", "--json"],
                                 kb_env).stdout)
    assert revised["version"] == 2 and revised["status"] == "draft" and "Investment and timeline" in \
        revised["diff_summary"]
    old = run_cli(["proposal", "show", proposal_id, "--version", "1"], kb_env)
    assert "version 1 of 2" in old.stdout
    missing = run_cli(["proposal", "show", proposal_id, "--version", "7", "--json"], kb_env, check=False)
    assert missing.returncode == 1 and json.loads(missing.stdout)["error"]["type"] == "not-found"


def test_propose_uses_the_openai_compatible_server_when_configured(kb_env):
    model = ScriptedModel()
    with OpenAIServer(model) as server:
        result = json.loads(run_cli(["propose", "Brightleaf Dental Group", "--template", "short", "--json"],
                                    with_model(kb_env, server)).stdout)
        assert sorted(model.drafted) == ["approach", "next_steps", "pricing", "understanding"]
        assert len(requests_for(server, "Outline")) == 1 and len(requests_for(server, "Summary")) == 1
    assert result["model"] == "gpt-4o" and not result["offline"] and result["token_usage"]["calls"] == 6
    assert result["content"]["title"] == "Proposal: growth marketing for the client"


def test_an_unknown_client_or_template_is_refused_clearly(kb_env):
    nobody = run_cli(["propose", "Nobody Inc", "--json"], kb_env, check=False)
    assert nobody.returncode == 1 and "no client matches 'Nobody Inc'" in json.loads(nobody.stdout)["error"]["message"]
    bad = run_cli(["propose", "Northwind", "--template", "haiku"], kb_env, check=False)
    assert bad.returncode == 1 and "unknown proposal template 'haiku'" in " ".join(bad.stderr.split())


def test_proposal_show_and_status_do_not_import_prefect(kb_env):
    probe = ("import sys\nfrom proposalflow.cli import app\n"
             "for args in (['proposal', 'show', '00000000-0000-0000-0000-000000000000'],\n"
             "             ['proposal', 'status', '00000000-0000-0000-0000-000000000000', 'in_review'],\n"
             "             ['proposal', 'list', '--json']):\n"
             "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
             "print('PREFECT-IMPORTED' if 'prefect' in sys.modules else 'PREFECT-NOT-IMPORTED', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=kb_env, capture_output=True, text=True, timeout=120)
    assert "PREFECT-NOT-IMPORTED" in result.stderr, result.stderr[-2000:]
    assert "proposal 00000000-0000-0000-0000-000000000000 does not exist" in result.stderr


@pytest.mark.slow
def test_sigkill_mid_generation_then_rerun_resumes_without_redrafting_finished_sections(kb_env):
    release = threading.Event()
    model = ScriptedModel(hold={"pricing": release})
    with OpenAIServer(model) as server:
        env = with_model(kb_env, server)
        process = subprocess.Popen([PROPOSALFLOW, "propose", "Northwind Logistics", "--json"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
                deadline = time.monotonic() + 180
                while True:  # five sections answered and their results checkpointed; pricing still waiting
                    done = conn.execute("SELECT count(DISTINCT task_id) FROM checkpoint_writes "
                                        "WHERE channel = 'drafts'").fetchone()[0]
                    if done >= 5 or time.monotonic() > deadline or process.poll() is not None:
                        break
                    time.sleep(0.2)
                assert done == 5 and "pricing" in model.drafted, process.stderr.read().decode()[-3000:] if \
                    process.poll() is not None else f"{done} sections checkpointed"
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)
                assert conn.execute("SELECT status FROM proposal_runs").fetchone()[0] == "running"  # died mid-run
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            release.set()  # the held request finishes (into a closed socket)
        before = {"outline": len(requests_for(server, "Outline")), "drafts": len(requests_for(server, "SectionDraft"))}
        assert before == {"outline": 1, "drafts": 6}
        rerun = run_cli(["propose", "Northwind Logistics", "--json"], env)
        result = json.loads(rerun.stdout)
        drafts_after = [section_of(b) for b in requests_for(server, "SectionDraft")[before["drafts"]:]]
        assert len(requests_for(server, "Outline")) == 1  # the plan was not made again
        assert drafts_after == ["pricing"]  # only the section that had not finished
    assert result["resumed"] and result["version"] == 1 and result["sections"] == 6
    assert "resuming run" in rerun.stderr
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT count(*), min(status) FROM proposals").fetchone() == (1, "draft")
        assert conn.execute("SELECT status, attempts FROM proposal_runs").fetchone() == ("completed", 2)
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 0


def test_proposal_show_tells_where_the_delivery_is_and_whether_the_email_is_a_draft_or_sent(cli_env, db):
    """`proposal show` (table and --json): the document's link, the files, the email's state — and it
    still runs no flow (no Prefect import)."""
    from pathlib import Path

    from pydantic import SecretStr

    from proposalflow.delivery import service
    from proposalflow.settings import Settings
    from tests.delivery_support import make_proposal
    from tests.fakes.smtp_server import SmtpServer

    pid = make_proposal(db)
    never = json.loads(run_cli(["proposal", "show", pid, "--json"], cli_env).stdout)
    assert never["deliveries"] == [] and never["status"] == "approved"
    assert f"not delivered yet (deliver it: proposalflow deliver {pid})" in run_cli(["proposal", "show", pid],
                                                                                   cli_env).stdout

    settings = Settings(DATABASE_URL=cli_env["DATABASE_URL"], PROPOSALFLOW_HOME=cli_env["PROPOSALFLOW_HOME"],
                        PROPOSALFLOW_DELIVERY="local")
    report = service.deliver(db, pid, settings=settings)
    shown = json.loads(run_cli(["proposal", "show", pid, "--json"], cli_env).stdout)
    [delivery] = shown["deliveries"]
    assert {k: delivery[k] for k in ("version", "target", "status", "mail_state", "doc_link", "files")} == \
        {"version": 1, "target": "local", "status": "completed", "mail_state": "draft",
         "doc_link": report["doc_link"], "files": report["files"]}
    assert set(delivery["steps"]) == {"document", "message"} and shown["doc_link"] == report["doc_link"]

    plain = run_cli(["proposal", "show", pid], {**cli_env, "COLUMNS": "80"}).stdout
    assert "Deliveries" in plain and re.search(r"v1\s.*local\s.*completed\s.*draft", plain)
    for path in report["files"]:  # whole paths, on their own lines, even in a narrow terminal
        assert re.search(rf"v1 local\s+file\s+{re.escape(path)}$", plain, re.M)
        assert Path(path).is_file()
    assert re.search(rf"v1 local\s+document\s+{re.escape(report['doc_link'])}$", plain, re.M)

    with SmtpServer() as server:
        service.deliver(db, pid, send=True, settings=settings.model_copy(
            update={"allow_send": True, "smtp_url": SecretStr(server.url)}))
    assert json.loads(run_cli(["proposal", "show", pid, "--json"], cli_env).stdout)["deliveries"][0]["mail_state"] \
        == "sent"
    assert re.search(r"v1\s.*local\s.*completed\s.*sent", run_cli(["proposal", "show", pid], cli_env).stdout)

    probe = ("import sys\nfrom proposalflow.cli import app\n"
             f"try:\n    app(['proposal', 'show', '{pid}', '--json'])\nexcept SystemExit:\n    pass\n"
             "print('PREFECT-IMPORTED' if 'prefect' in sys.modules else 'PREFECT-NOT-IMPORTED', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=120)
    assert "PREFECT-NOT-IMPORTED" in result.stderr, result.stderr[-2000:]


def test_the_demo_step_writes_one_offline_proposal_per_client_with_citations_that_resolve(
        pg_admin_url, template_url, prefect_api_url, tmp_path, monkeypatch, capsys):
    from proposalflow.cli.demo import propose_step
    from proposalflow.proposals import service
    from proposalflow.settings import get_settings

    url = knowledge_database(pg_admin_url)  # the sample knowledge base and three of the sample clients
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROPOSALFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PROPOSALFLOW_EMBEDDINGS", "local")
    monkeypatch.setenv("PROPOSALFLOW_LLM", "openai")  # a model is configured: the demo still writes offline
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens: a model call would fail
    get_settings.cache_clear()
    try:
        summary = propose_step(False)
        printed = capsys.readouterr().out
        again = propose_step(True)
    finally:
        get_settings.cache_clear()
    assert (summary["generated"], summary["reused"], summary["failed"]) == (3, 0, 0)
    assert "no language model wrote these" in printed and summary["proposals"][0]["proposal_id"] in printed
    assert (again["generated"], again["reused"]) == (0, 3)  # the demo run twice writes nothing new
    with psycopg.connect(url, autocommit=True) as conn:
        clients = {r[0] for r in conn.execute("SELECT id::text FROM clients")}
        stored = {r[0] for r in conn.execute("SELECT id FROM knowledge_chunks")}
        records = [service.get(conn, p["proposal_id"]) for p in summary["proposals"]]
    assert sorted(r.client_id for r in records) == sorted(clients)  # one proposal per client
    for record in records:
        content = record.content
        assert record.status == "draft" and content.metadata.offline and content.sections
        assert content.chunk_ids() and content.chunk_ids() <= stored  # every cited chunk exists
        assert all(ref.chunk_id in stored for ref in content.references if ref.kind == "chunk")
