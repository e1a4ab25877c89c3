"""The offline composer through the whole graph: real knowledge chunks, real PostgreSQL, no model."""

import psycopg
import pytest

from proposalflow.proposals import service
from proposalflow.proposals.schema import OFFLINE_MODEL, ChunkCitation, FactCitation
from proposalflow.settings import Settings, get_settings
from tests.proposals_support import client_id, knowledge_database


@pytest.fixture
def kb(pg_admin_url, template_url, tmp_path, monkeypatch):
    url = knowledge_database(pg_admin_url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROPOSALFLOW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn
    get_settings.cache_clear()


OFFLINE = Settings(PROPOSALFLOW_LLM="offline", PROPOSALFLOW_EMBEDDINGS="local")


def test_offline_proposal_cites_real_chunks_and_client_facts(kb):
    result = service.generate(kb, client_id(kb, "Northwind Logistics"), brief="Win more B2B shipper leads.",
                              settings=OFFLINE)
    assert result.offline and result.model == OFFLINE_MODEL and result.version == 1 and not result.resumed
    record = service.get(kb, result.proposal_id)
    assert record.status == "draft" and record.title == record.content.title
    content = record.content
    assert [s.id for s in content.sections] == ["understanding", "approach", "services", "evidence", "pricing",
                                                "next_steps"]
    chunk_ids = content.chunk_ids()
    stored = {r[0] for r in kb.execute("SELECT id FROM knowledge_chunks WHERE id = ANY(%s)", (list(chunk_ids),))}
    assert chunk_ids and chunk_ids == stored  # every cited chunk exists
    pricing_chunks = {c.chunk_id for c in content.pricing.citations}
    categories = {r[0] for r in kb.execute("SELECT DISTINCT category FROM knowledge_chunks WHERE id = ANY(%s)",
                                           (list(pricing_chunks),))}
    assert categories == {"pricing"}
    facts = [c for s in content.sections for c in s.citations if isinstance(c, FactCitation)]
    assert {f.field for f in facts} >= {"summary", "industry"}
    assert all(f.url == "https://northwindlogistics.com/about" for f in facts)
    assert all(isinstance(c, (ChunkCitation, FactCitation)) for s in content.sections for c in s.citations)
    assert content.metadata.client_enriched and content.metadata.check_warnings == []
    assert "no language model wrote this" in content.to_markdown()
    # the body carries [n] markers that point into the references
    assert "[1]" in content.sections[0].body and content.references[0].number == 1
    # checkpoints of a finished run are gone; the run is recorded as completed
    assert kb.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (result.run_id,)).fetchone()[0] == 0
    assert kb.execute("SELECT status, version FROM proposal_runs WHERE id = %s", (result.run_id,)).fetchone() == \
        ("completed", 1)


def test_a_client_without_enrichment_still_gets_a_proposal(kb):
    result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), settings=OFFLINE)
    content = service.get(kb, result.proposal_id).content
    assert not content.metadata.client_enriched
    assert not [c for s in content.sections for c in s.citations if isinstance(c, FactCitation)]
    assert content.chunk_ids() and "Brightleaf Dental Group" in content.title


def test_the_same_request_again_returns_that_proposal_and_new_writes_another_identical_one(kb):
    cid = client_id(kb, "Copperline Manufacturing")
    first = service.generate(kb, cid, brief="A new website", settings=OFFLINE)
    again = service.generate(kb, cid, brief="  A new website ", settings=OFFLINE)
    assert again.reused and (again.proposal_id, again.version) == (first.proposal_id, 1)
    other = service.generate(kb, cid, brief="A new website", new=True, settings=OFFLINE)
    assert other.proposal_id != first.proposal_id and not other.reused
    # the offline composer is deterministic: the same inputs give the same words
    assert service.get(kb, first.proposal_id).content.to_markdown() == \
        service.get(kb, other.proposal_id).content.to_markdown()
    regenerated = service.generate(kb, None, proposal_id=first.proposal_id, template="short", settings=OFFLINE)
    assert (regenerated.proposal_id, regenerated.version) == (first.proposal_id, 2)
    assert [s.id for s in service.get(kb, first.proposal_id).content.sections] == \
        ["understanding", "approach", "pricing", "next_steps"]
    assert kb.execute("SELECT count(*) FROM proposals").fetchone()[0] == 2


def test_offline_revisions_over_two_turns(kb):
    from proposalflow.errors import IllegalTransition
    from proposalflow.proposals import status

    first = service.generate(kb, client_id(kb, "Northwind Logistics"), settings=OFFLINE)
    v1 = service.get(kb, first.proposal_id).content
    shorter = service.revise(kb, first.proposal_id, "Make the pricing shorter", settings=OFFLINE)
    assert shorter.version == 2 and shorter.offline and OFFLINE_MODEL in shorter.reply
    v2 = service.get(kb, first.proposal_id).content
    assert len(v2.pricing.body) < len(v1.pricing.body) and v2.pricing.citations
    assert v2.section("approach").paragraphs == v1.section("approach").paragraphs
    assert shorter.diff_summary.startswith("executive summary rewritten; rewrote 'Investment and timeline'") or \
        "rewrote 'Investment and timeline'" in shorter.diff_summary
    # a required section of the template cannot be removed: a clear refusal, nothing saved
    from proposalflow.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match=r"cannot remove 'Relevant experience' \(evidence\): the 'standard' "
                                               "template requires it"):
        service.revise(kb, first.proposal_id, "Remove the relevant experience section", settings=OFFLINE)
    assert service.get(kb, first.proposal_id).versions == [1, 2]
    assert service.get(kb, first.proposal_id).content.section("evidence") is not None
    detail = service.revise(kb, first.proposal_id, "Add more detail to the next steps", settings=OFFLINE)
    v3 = service.get(kb, first.proposal_id).content
    assert detail.version == 3 and "rewrote 'Next steps'" in detail.diff_summary
    assert v3.pricing.paragraphs == v2.pricing.paragraphs  # the second turn builds on the first
    assert [m["role"] for m in service.conversation(kb, first.proposal_id)] == ["user", "assistant"] * 2
    status.transition(kb, first.proposal_id, "archived")
    with pytest.raises(IllegalTransition, match="can no longer change"):
        service.revise(kb, first.proposal_id, "Make it shorter", settings=OFFLINE)


def test_an_empty_proposal_created_first_is_filled_by_generation(kb):
    cid = client_id(kb, "Brightleaf Dental Group")
    empty = str(kb.execute("INSERT INTO proposals (client_id, status, brief, template) VALUES (%s, 'draft', "
                           "'Local SEO for three clinics', 'short') RETURNING id", (cid,)).fetchone()[0])
    assert service.get(kb, empty).content is None
    result = service.generate(kb, cid, "Local SEO for three clinics", "short", proposal_id=empty, settings=OFFLINE)
    record = service.get(kb, empty)
    assert (result.proposal_id, result.version, record.status) == (empty, 1, "draft")
    assert record.content.metadata.template == "short" and record.versions == [1]


def test_no_pricing_section_when_the_knowledge_base_has_no_pricing_notes(kb):
    kb.execute("DELETE FROM knowledge_chunks WHERE category = 'pricing'")
    result = service.generate(kb, client_id(kb, "Northwind Logistics"), settings=OFFLINE)
    content = service.get(kb, result.proposal_id).content
    assert content.pricing is None
    assert [s.id for s in content.sections] == ["understanding", "approach", "services", "evidence", "next_steps"]
    assert content.metadata.check_warnings == []  # an absent pricing section is expected, not a missing one
    assert "Investment" not in content.to_markdown()


def test_runs_killed_long_ago_and_never_resumed_are_swept_to_failed_by_the_next_generation(kb):
    from proposalflow.proposals import status, store
    from proposalflow.proposals.service import sibling_connection

    def killed_run(client: str, key: str, hours_ago: float, alive: bool = False):
        lock_conn = sibling_connection(kb)  # the "process" that runs it: its session holds the run lock
        run = store.start_run(kb, lock_conn, kind="generate", key=key, client_id=client_id(kb, client),
                              proposal_id=None)
        kb.execute("UPDATE proposal_runs SET started_at = now() - make_interval(secs => %s) WHERE id = %s",
                   (hours_ago * 3600, run.id))
        kb.execute("INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint, metadata) "
                   "VALUES (%s, '', 'c1', '{}', '{}')", (run.id,))
        if not alive:
            lock_conn.close()  # killed: the session ends, the lock is free
        return run, lock_conn

    abandoned, _ = killed_run("Copperline Manufacturing", "old-and-dead", 25)
    recent, _ = killed_run("Copperline Manufacturing", "recent-and-dead", 2)  # still resumable: left alone
    running, live = killed_run("Brightleaf Dental Group", "old-but-alive", 30, alive=True)  # a live process
    try:
        service.generate(kb, client_id(kb, "Northwind Logistics"), settings=OFFLINE)
        runs = dict(kb.execute("SELECT id::text, status FROM proposal_runs").fetchall())
        assert (runs[abandoned.id], runs[recent.id], runs[running.id]) == ("failed", "running", "running")
        error = kb.execute("SELECT error FROM proposal_runs WHERE id = %s", (abandoned.id,)).fetchone()[0]
        assert error.startswith("abandoned: the process running it stopped")
        assert status.current_status(kb, abandoned.proposal_id) == "failed"
        assert status.current_status(kb, recent.proposal_id) == "generating"
        assert status.current_status(kb, running.proposal_id) == "generating"
        assert status.history(kb, abandoned.proposal_id)[-1]["actor"] == "sweep"
        checkpoints = dict(kb.execute("SELECT thread_id, count(*) FROM checkpoints GROUP BY 1").fetchall())
        assert abandoned.id not in checkpoints and checkpoints[recent.id] == 1
        status.transition(kb, abandoned.proposal_id, "archived")  # a failed proposal can be put away
        assert service.sweep_abandoned_runs(kb) == []  # nothing more to sweep; the live run stays
    finally:
        live.close()
