"""`proposalflow kb …` as a user runs it: a subprocess, offline, against the test database."""

import json
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest

from proposalflow.knowledge.chunking import ChunkSettings, chunk_document
from proposalflow.knowledge.documents import file_source, read_source
from tests.fakes.openai_server import OpenAIServer
from tests.support import PROPOSALFLOW, run_cli

SAMPLE = str(resources.files("proposalflow") / "data" / "knowledge")


def test_add_the_sample_folder_search_it_then_add_again_embeds_nothing(cli_env):
    first = json.loads(run_cli(["kb", "add", SAMPLE, "--json"], cli_env).stdout)
    assert first["embedded"] == first["documents"] >= 15 and first["failed"] == 0
    found = json.loads(run_cli(["kb", "search", "How much does Google Ads management cost?", "--json"], cli_env).stdout)
    assert found["results"][0]["source_uri"].endswith("/pricing/retainer-packages.md") or any(
        r["source_uri"].endswith("/pricing/retainer-packages.md") for r in found["results"][:3])
    assert {"chunk_id", "document_id", "title", "source_uri", "category", "text", "score"} <= set(found["results"][0])
    second = json.loads(run_cli(["kb", "add", SAMPLE, "--json"], cli_env).stdout)
    assert (second["embedded"], second["chunks"], second["unchanged"]) == (0, 0, first["documents"])
    table = run_cli(["kb", "search", "law firm employment enquiries", "--k", "2", "--category", "case-studies"], cli_env)
    assert "Ashford" in table.stdout and "case-studies" in table.stdout
    status = json.loads(run_cli(["kb", "status", "--json"], cli_env).stdout)
    assert status["model"] == "local:wordllama/l2_supercat-256 (256-d)" and status["categories"]["pricing"] == 3


def test_kb_search_and_status_do_not_import_prefect(cli_env):
    probe = ("import sys\nfrom proposalflow.cli import app\n"
             "for args in (['kb', 'search', 'seo', '--json'], ['kb', 'status', '--json']):\n"
             "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
             "print('PREFECT-IMPORTED' if 'prefect' in sys.modules else 'PREFECT-NOT-IMPORTED', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", probe], env=cli_env, capture_output=True, text=True, timeout=120)
    assert "PREFECT-NOT-IMPORTED" in result.stderr, result.stderr[-2000:]


def test_a_missing_file_is_reported_the_others_are_embedded_and_the_command_fails(cli_env, db, tmp_path):
    (tmp_path / "ok.md").write_text("# Fine\n\nreadable")
    partly = run_cli(["kb", "add", str(tmp_path / "ok.md"), str(tmp_path / "nope.md"), "--json"], cli_env,
                     check=False)
    assert partly.returncode == 1  # a source was not embedded: a failure a script must notice
    document = json.loads(partly.stdout)
    assert (document["embedded"], document["failed"]) == (1, 1)
    assert "nope.md: no such file" in document["failures"][0]["reason"]
    assert db.execute("SELECT title, chunk_count FROM knowledge_base").fetchall() == [("Fine", 1)]  # kept
    result = run_cli(["kb", "add", str(tmp_path / "nope.md")], cli_env, check=False)
    assert result.returncode == 1 and "nope.md: no such file" in result.stdout
    bad = run_cli(["kb", "search", "  ", "--json"], cli_env, check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["type"] == "validation"


def test_reembed_switches_a_knowledge_base_to_the_configured_model(cli_env, tmp_path):
    (tmp_path / "pricing").mkdir()
    (tmp_path / "pricing" / "rates.md").write_text("# Rates\n\npaid ads management fee is fifteen percent")
    (tmp_path / "services.md").write_text("# Services\n\nwebsite design and accessibility audits")
    (tmp_path / "team.md").write_text("# Team\n\nDana Whitfield founded the agency")
    assert json.loads(run_cli(["kb", "add", str(tmp_path), "--json"], cli_env).stdout)["embedded"] == 3
    with OpenAIServer(dimensions=64) as server:
        env = {**cli_env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url,
               "PROPOSALFLOW_EMBEDDING_MODEL": "compat-embed-64"}
        refused = run_cli(["kb", "search", "paid ads management fee", "--json"], env, check=False)
        assert refused.returncode == 1 and "proposalflow kb reembed" in json.loads(refused.stdout)["error"]["message"]
        for path in tmp_path.rglob("*.md"):
            path.unlink()  # re-embedding reads the stored text, not the sources
        requests_before = len(server.requests)
        summary = json.loads(run_cli(["kb", "reembed", "--json"], env).stdout)
        assert (summary["embedded"], summary["chunks"], summary["failed"]) == (3, 3, 0)
        embedded = sorted(t for path, body in server.requests[requests_before:] if path.endswith("/embeddings")
                          for t in body["input"] if t != "dimension probe")
        assert embedded == ["Rates\n\npaid ads management fee is fifteen percent",
                            "Services\n\nwebsite design and accessibility audits", "Team\n\nDana Whitfield founded the agency"]
        status = json.loads(run_cli(["kb", "status", "--json"], env).stdout)
        assert (status["model"], status["documents"], status["chunks"]) == ("openai:compat-embed-64 (64-d)", 3, 3)
        found = json.loads(run_cli(["kb", "search", "paid ads management fee", "--k", "1", "--json"], env).stdout)
        assert found["results"][0]["source_uri"].endswith("/pricing/rates.md")
    # the local model is now the other one: refused, naming the command
    refused = run_cli(["kb", "search", "paid ads", "--json"], cli_env, check=False)
    assert refused.returncode == 1 and "proposalflow kb reembed" in refused.stdout


def test_the_scheduled_embed_knowledge_run_prunes():
    """prefect.yaml: the hourly embed-knowledge schedule passes prune: true (a manual run does not)."""
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    (deployment,) = [d for d in config["deployments"] if d["name"] == "embed-knowledge"]
    assert deployment["parameters"]["prune"] is False
    assert deployment["schedules"] and all(s.get("parameters", {}).get("prune") is True
                                           for s in deployment["schedules"])


@pytest.mark.slow
def test_sigkill_during_embedding_then_rerun_embeds_every_document_exactly_once(cli_env, db, tmp_path):
    folder = tmp_path / "kb"
    folder.mkdir()
    documents = 40
    for i in range(documents):
        body = "\n\n".join(f"Paragraph {j} of note {i}: " + f"service{i} detail{j} " * 40 for j in range(4))
        (folder / f"note-{i:02d}.md").write_text(f"# Note {i}\n\n{body}\n")
    expected_chunks = {str(p): len(chunk_document(d.title, d.text, ChunkSettings()))
                       for p in sorted(folder.iterdir()) for d in [read_source(file_source(p))]}
    with OpenAIServer(dimensions=64, latency=0.4) as server:
        env = {**cli_env, "OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": server.base_url,
               "PROPOSALFLOW_EMBEDDING_MODEL": "compat-embed-64", "PROPOSALFLOW_KB_BATCH_DOCUMENTS": "2"}
        process = subprocess.Popen([PROPOSALFLOW, "kb", "add", str(folder)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        batches_done = 0
        deadline = time.monotonic() + 180
        try:
            for line in process.stderr:  # wait until a few batches are committed, then kill mid-embedding
                batches_done += "documents: 2 embedded" in line
                if batches_done >= 4 or time.monotonic() > deadline:
                    break
            assert process.poll() is None, "the run finished before it could be killed"
            time.sleep(0.5)  # inside the next batch's embedding request
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(30)
        assert process.returncode == -signal.SIGKILL
        kept = {r[0].removeprefix("file://") for r in db.execute("SELECT source_uri FROM knowledge_base")}
        assert 4 * 2 <= len(kept) < documents
        requests_before = server.count("/embeddings")
        server.latency = 0
        summary = json.loads(run_cli(["kb", "add", str(folder), "--json"], env, timeout=300).stdout)
        texts_after = [t for path, body in server.requests[requests_before:] if path.endswith("/embeddings")
                       for t in body["input"] if t != "dimension probe"]  # an unknown model's length, asked once
    assert (summary["embedded"], summary["unchanged"], summary["failed"]) == (documents - len(kept), len(kept), 0)
    rows = db.execute("""SELECT d.source_uri, count(*), count(DISTINCT c.position), min(c.position), max(c.position)
                           FROM knowledge_base d JOIN knowledge_chunks c ON c.document_id = d.id GROUP BY 1""").fetchall()
    assert len(rows) == documents
    for uri, count, distinct, low, high in rows:  # every document whole, each chunk once
        assert count == distinct == high + 1 == expected_chunks[uri.removeprefix("file://")] and low == 0, uri
    # the re-run embedded exactly what the killed run had not committed: no document twice
    note_of = {f"Note {int(p.rsplit('-', 1)[1][:2])}": p for p in expected_chunks}
    embedded_again = [note_of[t.split("\n\n", 1)[0]] for t in texts_after]
    assert not set(embedded_again) & kept
    assert len(embedded_again) == sum(n for p, n in expected_chunks.items() if p not in kept)


def test_the_demo_step_embeds_the_sample_folder_once_and_answers_a_pricing_question(db, prefect_api_url):
    from proposalflow.cli.demo import knowledge_step

    first = knowledge_step(True)
    assert first["embedded"] == first["documents"] >= 15 and first["failed"] == 0
    results = first["search"]["results"]
    assert results and results[0]["source_uri"].endswith("/pricing/retainer-packages.md")
    again = knowledge_step(True)
    assert (again["embedded"], again["unchanged"], again["pruned"]) == (0, first["documents"], 0)
