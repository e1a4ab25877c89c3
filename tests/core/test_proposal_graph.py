"""The proposal graph with a language model: the local OpenAI-compatible server over real HTTP,
structured output, real knowledge chunks in real PostgreSQL."""

import time

import psycopg
import pytest

from proposalflow.proposals import service
from proposalflow.proposals.graph import transient_errors
from proposalflow.settings import Settings, get_settings
from tests.fakes.openai_server import HTTPError, OpenAIServer
from tests.proposals_support import ScriptedModel, client_id, knowledge_database, requests_for, section_of


@pytest.fixture
def kb(pg_admin_url, template_url, tmp_path, monkeypatch):
    url = knowledge_database(pg_admin_url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROPOSALFLOW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn
    get_settings.cache_clear()


def llm_settings(server, **extra) -> Settings:
    return Settings(PROPOSALFLOW_LLM="openai", OPENAI_API_KEY="test", OPENAI_BASE_URL=server.base_url,
                    PROPOSALFLOW_LLM_MODEL="gpt-4o", PROPOSALFLOW_EMBEDDINGS="local",
                    PROPOSALFLOW_PROPOSAL_RETRY_SECONDS=0.05, **extra)


def test_sections_are_drafted_in_parallel_from_the_model(kb):
    model = ScriptedModel(draft_seconds=1.0)
    with OpenAIServer(model) as server:
        result = service.generate(kb, client_id(kb, "Northwind Logistics"), brief="More shipper leads.",
                                  settings=llm_settings(server))
    assert not result.offline and result.model == "gpt-4o"
    assert sorted(model.drafted) == sorted(["understanding", "approach", "services", "evidence", "pricing",
                                            "next_steps"])
    assert model.max_in_flight >= 4  # the drafts overlapped at the server (timing-free: the machine may be busy)
    content = service.get(kb, result.proposal_id).content
    assert content.metadata.token_usage.calls == 8  # plan + 6 sections + summary
    assert content.metadata.token_usage.total_tokens > 0
    assert content.title == "Proposal: growth marketing for the client"
    stored = {r[0] for r in kb.execute("SELECT id FROM knowledge_chunks")}
    assert content.chunk_ids() and content.chunk_ids() <= stored
    # the prompt of each section carries that section's passages and the client's facts with sources
    approach = next(b for b in requests_for(server, "SectionDraft") if section_of(b) == "approach")
    prompt = approach["messages"][-1]["content"]
    assert "[chunk " in prompt and "[fact industry] Logistics (source: https://northwindlogistics.com/about)" in prompt


def test_a_citation_that_does_not_resolve_is_redrafted_once_with_the_reason(kb):
    model = ScriptedModel(bad_citation={"evidence"})
    with OpenAIServer(model) as server:
        result = service.generate(kb, client_id(kb, "Northwind Logistics"), settings=llm_settings(server))
        evidence = [b for b in requests_for(server, "SectionDraft") if section_of(b) == "evidence"]
    assert model.drafted.count("evidence") == 2 and model.drafted.count("approach") == 1
    redraft = evidence[1]["messages"][-1]["content"]
    assert "failed our check" in redraft and "cites knowledge chunk 987654321, which does not exist" in redraft
    content = service.get(kb, result.proposal_id).content
    assert content.metadata.redrafted_sections == ["evidence"] and content.metadata.check_warnings == []
    assert 987654321 not in content.chunk_ids() and content.section("evidence").citations


def test_a_citation_still_wrong_after_the_redraft_is_dropped_and_reported(kb):
    model = ScriptedModel()

    def stubborn(request):  # a model that cites a missing chunk however often it is asked
        answer = model(request)
        if "(id approach) of our proposal" in request.text and "paragraphs" in str(answer):
            for paragraph in answer["content"]["paragraphs"]:
                paragraph["chunk_ids"] = [987654321]
        return answer

    with OpenAIServer(stubborn) as server:
        result = service.generate(kb, client_id(kb, "Northwind Logistics"), settings=llm_settings(server))
    content = service.get(kb, result.proposal_id).content
    assert model.drafted.count("approach") == 2  # one redraft, not more
    assert 987654321 not in content.chunk_ids()
    assert any("Proposed approach" in w and "987654321" in w for w in content.metadata.check_warnings)
    assert result.warnings == content.metadata.check_warnings


def test_a_500_then_success_is_retried_by_the_node(kb):
    model = ScriptedModel()
    with OpenAIServer(model, faults=[HTTPError(500)]) as server:
        writer = _writer(server, max_retries=0)  # no client-side retry: the graph's retry policy does it
        result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), settings=llm_settings(server),
                                  writer=writer)
        assert len(requests_for(server, "Outline")) == 2  # the 500, then the retry
    assert service.get(kb, result.proposal_id).status == "draft"


def test_a_timeout_is_retried_by_the_node(kb):
    model = ScriptedModel()
    calls = {"summary": 0}

    def slow_first_summary(request):
        if (request.body.get("response_format") or {}).get("json_schema", {}).get("name") == "Summary":
            calls["summary"] += 1
            if calls["summary"] == 1:
                time.sleep(2.5)
        return model(request)

    with OpenAIServer(slow_first_summary) as server:
        writer = _writer(server, max_retries=0, timeout=1.0)
        result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), settings=llm_settings(server),
                                  writer=writer)
    assert calls["summary"] == 2 and result.version == 1


def test_timeout_errors_are_named_in_the_retry_policy():
    import openai

    errors = transient_errors()
    assert TimeoutError in errors and openai.APITimeoutError in errors and ValueError not in errors


def test_a_model_that_keeps_failing_fails_the_run_and_the_same_request_resumes(kb):
    model = ScriptedModel()
    cid = client_id(kb, "Copperline Manufacturing")
    with OpenAIServer(model) as server:
        failing = {"on": True}

        def flaky(request):
            if failing["on"] and "(id pricing) of our proposal" in request.text:
                return HTTPError(503)
            return model(request)

        server.chat = flaky
        settings = llm_settings(server)
        from proposalflow.errors import IntegrationFailed

        with pytest.raises(IntegrationFailed, match="run the same request again to resume"):
            service.generate(kb, cid, settings=settings, writer=_writer(server, max_retries=0))
        proposal = kb.execute("SELECT id, status FROM proposals").fetchone()
        assert proposal[1] == "failed"
        drafted_before = list(model.drafted)
        failing["on"] = False
        time.sleep(6)  # the process is "dead" a while before the same request comes again
        result = service.generate(kb, cid, settings=settings, writer=_writer(server, max_retries=0))
    wall = time.time() - service.get(kb, result.proposal_id).created_at.timestamp()
    assert result.resumed and str(proposal[0]) == result.proposal_id and result.version == 1
    assert 0 < result.seconds <= wall - 5  # generation time counts the work, not the time nothing ran
    again = model.drafted[len(drafted_before):]
    assert again == ["pricing"]  # the five finished sections were not requested again
    assert service.get(kb, result.proposal_id).status == "draft"


def test_revise_over_two_turns_keeps_history_and_versions(kb):
    model = ScriptedModel()
    with OpenAIServer(model) as server:
        settings = llm_settings(server)
        first = service.generate(kb, client_id(kb, "Northwind Logistics"), settings=settings)
        v1 = service.get(kb, first.proposal_id).content
        drafted = len(model.drafted)
        turn1 = service.revise(kb, first.proposal_id, "Make the pricing shorter", settings=settings)
        assert model.drafted[drafted:] == ["pricing"]  # only the section the instruction concerns
        drafted = len(model.drafted)
        turn2 = service.revise(kb, first.proposal_id, "Add more detail to the next steps", settings=settings)
        assert model.drafted[drafted:] == ["next_steps"]
        routing = requests_for(server, "RevisionPlan")[-1]["messages"][-1]["content"]
        second_draft = requests_for(server, "SectionDraft")[-1]["messages"][-1]["content"]
    assert "Make the pricing shorter" in routing and "Make the pricing shorter" in second_draft  # history seen
    assert (turn1.version, turn2.version) == (2, 3)
    assert "rewrote 'Investment and timeline'" in turn1.diff_summary and "next" not in turn1.diff_summary.lower()
    v2 = service.get(kb, first.proposal_id, version=2).content
    v3 = service.get(kb, first.proposal_id).content
    assert len(v2.pricing.paragraphs) == 1 < len(v1.pricing.paragraphs)
    assert v2.section("approach").paragraphs == v1.section("approach").paragraphs  # untouched sections stay
    assert "As you asked: Add more detail to the next steps" in v3.section("next_steps").body
    assert v3.pricing.paragraphs == v2.pricing.paragraphs
    assert service.get(kb, first.proposal_id, version=1).content.to_markdown() == v1.to_markdown()
    history = service.conversation(kb, first.proposal_id)
    assert [(m["role"], m["version"]) for m in history] == [("user", 2), ("assistant", 2), ("user", 3),
                                                           ("assistant", 3)]
    assert "I will rewrite pricing" in history[1]["content"] and "Saved version 2" in history[1]["content"]
    assert [v["version"] for v in service.versions(kb, first.proposal_id)] == [1, 2, 3]


def _writer(server, **kwargs):
    from proposalflow.proposals.writers import make_writer

    return make_writer(llm_settings(server), **kwargs)


def test_function_calling_for_servers_without_json_schema(kb):
    model = ScriptedModel()
    with OpenAIServer(model) as server:
        settings = llm_settings(server, PROPOSALFLOW_LLM_STRUCTURED_METHOD="function_calling")
        result = service.generate(kb, client_id(kb, "Northwind Logistics"), template="short", settings=settings)
        assert all(body.get("tools") and "response_format" not in body for _, body in server.requests)
    assert result.sections == 4 and result.citations > 0


def test_model_calls_are_rate_limited(kb):
    model = ScriptedModel()
    with OpenAIServer(model) as server:
        settings = llm_settings(server, PROPOSALFLOW_LLM_RPM=120)  # 2 a second, bursts of 2
        started = time.perf_counter()
        service.generate(kb, client_id(kb, "Brightleaf Dental Group"), template="short", settings=settings)
        elapsed = time.perf_counter() - started
        assert server.count("/chat/completions") == 6
    assert elapsed >= 1.9  # 6 calls at 2/s with a bucket of 2: at least ~2 s whatever the machine


def test_an_instruction_that_concerns_nothing_adds_no_version(kb):
    model = ScriptedModel(revision={"rewrite_section_ids": [], "remove_section_ids": [], "add_sections": [],
                                    "rewrite_summary": False, "reply": "That is already the case."})
    with OpenAIServer(model) as server:
        settings = llm_settings(server)
        first = service.generate(kb, client_id(kb, "Northwind Logistics"), template="short", settings=settings)
        turn = service.revise(kb, first.proposal_id, "Keep it in English", settings=settings)
    assert (turn.version, turn.diff_summary) == (1, "no change")
    assert service.get(kb, first.proposal_id).versions == [1]
    assert [m["content"] for m in service.conversation(kb, first.proposal_id)] == \
        ["Keep it in English", "That is already the case.\nNothing changed: no new version."]


def _primary_broken(model, failure):
    """A server where the primary model ('primary-broken') answers `failure(request)` and any other model is `model`."""
    def chat(request):
        if request.body.get("model") == "primary-broken":
            return failure(request)
        return model(request)
    return chat


def _fallback_settings(server) -> Settings:
    return llm_settings(server, PROPOSALFLOW_LLM_FALLBACK_MODEL="gpt-4o-mini").model_copy(
        update={"llm_model": "primary-broken"})


def test_the_fallback_model_writes_the_proposal_when_the_primary_fails(kb):
    model = ScriptedModel()
    with OpenAIServer(_primary_broken(model, lambda request: HTTPError(500))) as server:
        settings = _fallback_settings(server)
        result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), template="short", settings=settings,
                                  writer=_writer_from(settings, max_retries=0))
        asked = [body.get("model") for path, body in server.requests if path.endswith("/chat/completions")]
    content = service.get(kb, result.proposal_id).content
    assert result.sections == 4 and sorted(model.drafted) == ["approach", "next_steps", "pricing", "understanding"]
    assert content.metadata.model == "primary-broken (fallback used: gpt-4o-mini)" == result.model
    # every call went to the primary first, then to the fallback: 6 calls (plan, 4 sections, summary) each
    assert asked.count("primary-broken") == 6 and asked.count("gpt-4o-mini") == 6


def test_a_malformed_answer_from_the_primary_goes_to_the_fallback(kb):
    # function calling: langchain returns a tool call that does not parse as data (include_raw=True), not as an
    # error (with json_schema the openai SDK raises, which falls back anyway)
    model = ScriptedModel()
    broken = {"tool_call": {"name": "Outline", "arguments": '{"sections": [{"id": "understanding", '}}
    with OpenAIServer(_primary_broken(model, lambda request: broken)) as server:
        settings = _fallback_settings(server).model_copy(update={"llm_structured_method": "function_calling"})
        result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), template="short", settings=settings,
                                  writer=_writer_from(settings, max_retries=0))
        asked = [body.get("model") for path, body in server.requests if path.endswith("/chat/completions")]
    assert result.model == "primary-broken (fallback used: gpt-4o-mini)" and result.sections == 4
    assert asked.count("primary-broken") == 6 and asked.count("gpt-4o-mini") == 6  # no node retry was needed


def _writer_from(settings, **kwargs):
    from proposalflow.proposals.writers import make_writer

    return make_writer(settings, **kwargs)


def test_a_required_section_still_empty_after_its_redraft_fails_the_run_and_saves_nothing(kb):
    from proposalflow.proposals.checks import IncompleteProposal

    model = ScriptedModel()

    def empty_evidence(request):
        answer = model(request)
        if "(id evidence) of our proposal" in request.text:
            return {"content": {"paragraphs": []}}
        return answer

    with OpenAIServer(empty_evidence) as server:
        with pytest.raises(IncompleteProposal, match=r"lacks its required section 'Relevant experience' \(evidence\) "
                                                     r"after a redraft .*nothing was saved"):
            service.generate(kb, client_id(kb, "Northwind Logistics"), settings=llm_settings(server))
    assert model.drafted.count("evidence") == 2  # drafted, then once more with the reason
    proposal_id, status, version = kb.execute("SELECT id, status, version FROM proposals").fetchone()
    assert (status, version) == ("failed", 0)
    assert kb.execute("SELECT count(*) FROM proposal_versions").fetchone()[0] == 0
    run_id, run_status, error = kb.execute("SELECT id, status, error FROM proposal_runs").fetchone()
    assert run_status == "failed" and "IncompleteProposal" in error
    # the same request again starts afresh (a model may answer differently), it does not resume into the same failure
    assert kb.execute("SELECT count(*) FROM checkpoints WHERE thread_id = %s", (str(run_id),)).fetchone()[0] == 0


def test_a_proposal_longer_than_its_template_allows_has_its_longest_sections_redrafted_shorter(kb):
    model = ScriptedModel()
    long_text = "We will run this part of the work with weekly reviews and clear owners for every task. " * 40  # ~3.5k

    def verbose(request):  # each section's first draft just within its own bound; together over the 9000 of "short"
        answer = model(request)
        if "paragraphs" in str(answer) and "(id next_steps)" not in request.text:
            redraft = "failed our check" in request.text  # then a reasonable length
            for paragraph in answer["content"]["paragraphs"]:
                paragraph["text"] = long_text[:600 if redraft else 3500]
        return answer

    with OpenAIServer(verbose) as server:
        result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), template="short",
                                  settings=llm_settings(server))
        redrafts = [b["messages"][-1]["content"] for b in requests_for(server, "SectionDraft")
                    if "failed our check" in b["messages"][-1]["content"]]
    content = service.get(kb, result.proposal_id).content
    assert redrafts and all("the whole proposal is too long" in r and "at most 9000" in r for r in redrafts)
    assert set(content.metadata.redrafted_sections) <= {"understanding", "approach", "pricing"}
    assert sum(len(s.body) for s in content.sections) < 9000 and content.metadata.check_warnings == []


def test_a_placeholder_in_the_title_is_caught_after_assembly_and_written_once_more(kb):
    model = ScriptedModel()

    def placeholder_title(request):
        answer = model(request)
        if "Write the title and the executive summary" in request.text and "failed our check" not in request.text:
            return {"content": {"title": "Proposal for [Client name]",
                                "executive_summary": "We propose a focused programme. It builds on our services."}}
        return answer

    with OpenAIServer(placeholder_title) as server:
        result = service.generate(kb, client_id(kb, "Brightleaf Dental Group"), template="short",
                                  settings=llm_settings(server))
        summaries = [b["messages"][-1]["content"] for b in requests_for(server, "Summary")]
    assert len(summaries) == 2
    assert "failed our check: title: placeholder text: '[Client name]'" in summaries[1]
    content = service.get(kb, result.proposal_id).content
    assert content.title == "Proposal: growth marketing for the client"
    assert "executive_summary" in content.metadata.redrafted_sections and content.metadata.check_warnings == []
    assert content.metadata.token_usage.calls == 7  # plan + 4 sections + 2 summaries


def test_the_writer_s_client_retries_once_per_call_and_the_node_retries_the_rest(kb):
    model = ScriptedModel()

    def outline_down(request):
        if (request.body.get("response_format") or {}).get("json_schema", {}).get("name") == "Outline":
            return HTTPError(500, headers={"retry-after-ms": "10"})
        return model(request)

    from proposalflow.errors import IntegrationFailed

    with OpenAIServer(outline_down) as server:
        with pytest.raises(IntegrationFailed):
            service.generate(kb, client_id(kb, "Brightleaf Dental Group"), template="short",
                             settings=llm_settings(server))  # the writer made from settings, as the CLI and flows do
        # 3 node attempts x (1 call + 1 client retry); make_chat_model's default of 3 retries would make 12
        assert len(requests_for(server, "Outline")) == 6
