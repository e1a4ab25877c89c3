"""The proposal workflow as LangGraph graphs (plain core code: no Prefect here).

Generation:

    load_client ─▶ plan ─▶ draft_section × N (Send, in parallel) ─▶ check ─┬─▶ assemble ─▶ check_document ─┬─▶ save
                                ▲                                          │       ▲                          │
                                └── draft_section again (once, with the reason) ◀┘  └── once, with the reason ◀┘

`check` checks each section (citations resolve, placeholders, its length) and the sections together
(the template's `max_total_chars`); a required section still missing after its redraft fails the run
(`IncompleteProposal`). `assemble` writes the title and the executive summary; `check_document`
checks them (placeholders, length) and has them written once more with the reason.

Revision (one conversation turn):

    load_proposal ─▶ route ─▶ draft_section × concerned sections (Send) ─▶ check ─▶ assemble_revision
        ─▶ check_document ─▶ save          (route refuses to remove a required section)

Every outside thing is injected through `GraphDeps` (the writer, the retriever, the chunk lookup, the
loaders and the saver), so the flow passes the real ones and tests pass local ones. State holds only
JSON-like values: a PostgreSQL checkpointer stores it after every step and after each finished
section, so a killed run resumes without drafting finished sections again.

Nodes retry transient failures (`RetryPolicy`); LangGraph's default `retry_on` does not retry
`TimeoutError` (nor openai's timeout errors), so the list is named here.
"""

from __future__ import annotations

import operator
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Iterable, TypedDict

from ..errors import ValidationFailed
from .checks import (IncompleteProposal, cited_chunk_ids, document_problems, drop_unresolved, missing_required,
                     section_problems, too_long)
from .facts import ClientFacts
from .schema import (ClientRef, GenerationMetadata, Paragraph, ProposalContent, Section, TokenUsage)
from .templates import PRICING_CATEGORY, PlannedSection, Template, get_template
from .writers import Writer, add_usage, draft_text

PASSAGES_PER_SECTION = 5
MAX_ATTEMPTS = 2  # a draft, and one redraft with the check's reason


def _merge(a: dict | None, b: dict | None) -> dict:
    return {**(a or {}), **(b or {})}


def _later(a: float | None, b: float | None) -> float:
    """`started` moves only forward: a resumed run shifts it by the time the process was dead."""
    return max(a or 0.0, b or 0.0)


class ProposalState(TypedDict, total=False):
    # input
    run_id: str
    flow_run_id: str | None
    client_id: str
    proposal_id: str | None
    brief: str | None
    template: str
    instruction: str | None
    # built along the way
    started: Annotated[float, _later]  # minus the time a killed process was dead (see GraphDeps.resumed_started)
    client: dict  # ClientFacts.as_dict()
    history: list[dict]  # revision: the conversation so far
    base: dict | None  # revision: the current version's content
    route: dict  # revision: what the instruction concerns
    outline: list[dict]  # PlannedSection dicts, in proposal order
    targets: list[str]  # the section ids this run drafts
    drafts: Annotated[dict, _merge]  # section id -> draft
    attempts: Annotated[dict, _merge]  # section id -> drafts made
    problems: dict  # section id -> problems found by the last check
    redrafted: Annotated[list, operator.add]
    warnings: list[str]
    usage: Annotated[dict, add_usage]
    content: dict  # the ProposalContent, as JSON
    summary_attempts: int  # title + executive summary written so many times
    summary_problems: list[str]  # what check_document found in the last ones
    diff_summary: str
    reply: str
    saved: dict  # {"proposal_id", "version"}


class SectionTask(TypedDict, total=False):
    """What one parallel `draft_section` gets (a Send payload)."""

    section: dict
    attempt: int
    reason: str | None
    previous: dict | None
    client: dict
    brief: str | None
    instruction: str | None
    history: list[dict]


Retriever = Callable[[str, int, "str | None"], list]


@dataclass
class GraphDeps:
    writer: Writer
    retrieve: Retriever  # (query, k, category) -> passages with chunk_id, document_id, title, source_uri, category, text, score
    chunks_exist: Callable[[Iterable[int]], set[int]]  # which of these chunk ids are stored
    load_client: Callable[[str], ClientFacts]
    save: Callable[[dict], dict]  # final state -> {"proposal_id", "version"}; idempotent per run_id
    load_proposal: Callable[[str], dict] | None = None  # revision: -> {"base", "client", "history"}
    passages_per_section: int = PASSAGES_PER_SECTION
    retry_initial_interval: float = 1.0
    retry_max_attempts: int = 3  # attempts per node, the first included (2 retries)
    # set when a run is resumed: `started` shifted by the time between its last checkpoint and the resume, so
    # generation_seconds counts working time only; the nodes that run after the resume store it in the state
    resumed_started: float | None = None


def transient_errors() -> tuple[type[BaseException], ...]:
    """Failures worth running a node again for. TimeoutError is named: LangGraph's default skips it."""
    import httpx
    import openai
    import psycopg
    from langchain_core.exceptions import OutputParserException

    from ..errors import IntegrationFailed

    return (TimeoutError, ConnectionError, httpx.TimeoutException, httpx.NetworkError,
            openai.APITimeoutError, openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError,
            psycopg.OperationalError, IntegrationFailed, OutputParserException)


def passage_dict(passage: Any) -> dict:
    get = passage.get if isinstance(passage, dict) else (lambda k, d=None: getattr(passage, k, d))
    return {"chunk_id": int(get("chunk_id")), "document_id": None if get("document_id") is None else str(get("document_id")),
            "title": get("title"), "source_uri": get("source_uri"), "category": get("category"),
            "text": get("text") or "", "score": float(get("score") or 0.0)}


# --- the nodes ------------------------------------------------------------------------------------------
class _Nodes:
    def __init__(self, deps: GraphDeps):
        self.deps = deps

    # generation
    def load_client(self, state: ProposalState) -> dict:
        return {"client": self.deps.load_client(state["client_id"]).as_dict(), "started": time.time()}

    def plan(self, state: ProposalState) -> dict:
        template = get_template(state.get("template"))
        has_pricing = False
        if any(s.kind == "pricing" for s in template.sections):
            has_pricing = bool(self.deps.retrieve("pricing rates fees", 1, PRICING_CATEGORY))
        sections, usage = self.deps.writer.plan(ClientFacts.from_dict(state["client"]), state.get("brief"),
                                                template, has_pricing)
        return {"outline": [s.as_dict() for s in sections], "targets": [s.id for s in sections], "usage": usage}

    def draft_section(self, task: SectionTask) -> dict:
        section = PlannedSection.from_dict(task["section"])
        k = self.deps.passages_per_section
        found = [passage_dict(p) for p in self.deps.retrieve(section.query, 2 * k if section.prefer else k,
                                                              section.category)]
        passages = section.rank(found)[:k]
        draft, usage = self.deps.writer.draft(
            ClientFacts.from_dict(task["client"]), task.get("brief"), section, passages,
            reason=task.get("reason"), previous=task.get("previous"), instruction=task.get("instruction"),
            history=task.get("history"))
        attempt = task.get("attempt", 1)
        return {"drafts": {section.id: draft}, "attempts": {section.id: attempt}, "usage": usage,
                "redrafted": [section.id] if attempt > 1 else []}

    def check(self, state: ProposalState) -> dict:
        client = ClientFacts.from_dict(state["client"])
        drafts, attempts = state.get("drafts", {}), state.get("attempts", {})
        targets = [s for s in state["outline"] if s["id"] in state["targets"]]
        stored = self.deps.chunks_exist(cited_chunk_ids({s["id"]: drafts.get(s["id"], {}) for s in targets}))
        problems = {}
        for spec in targets:
            found = section_problems(PlannedSection.from_dict(spec), drafts.get(spec["id"]),
                                     stored_chunks=set(stored), facts=client)
            if found:
                problems[spec["id"]] = found
        template = _template(state.get("template"))
        if template is not None:  # the sections together: the longest ones that may be redrafted get shorter
            redraftable = {s["id"] for s in targets if attempts.get(s["id"], 1) < MAX_ATTEMPTS}
            _, shorten = too_long(state["outline"], drafts, template.max_total_chars, redraftable)
            for sid, reason in shorten.items():
                problems[sid] = [*problems.get(sid, []), reason]
        update: dict = {"problems": problems}
        if all(attempts.get(i, 1) >= MAX_ATTEMPTS for i in problems):  # last check: keep the problems as warnings
            headings = {s["id"]: s["heading"] for s in targets}
            kept = {i: drop_unresolved(drafts[i], stored_chunks=set(stored), facts=client)
                    for i in problems if i in drafts}
            missing = missing_required(state["outline"], {**drafts, **kept})
            if missing:
                names = ", ".join(f"'{s['heading']}' ({s['id']})" for s in missing)
                why = "; ".join(p for s in missing for p in problems.get(s["id"], []))
                raise IncompleteProposal(
                    f"the proposal for {client.name} lacks its required section{'s' if len(missing) > 1 else ''} "
                    f"{names} after a redraft ({why or 'empty'}): nothing was saved. Add knowledge-base documents "
                    "the section can cite, or choose a template without it, then ask again.",
                    [{"field": f"sections.{s['id']}", "message": "required section missing after a redraft"}
                     for s in missing])
            update["drafts"] = kept
            update["warnings"] = [f"{headings[i]}: {p}" for i, found in problems.items() for p in found]
            if template is not None:
                problem, _ = too_long(state["outline"], {**drafts, **kept}, template.max_total_chars, set())
                if problem and not any(problem in w for w in update["warnings"]):
                    update["warnings"].append(problem)
        return update

    def after_check(self, state: ProposalState):
        from langgraph.types import Send

        attempts, drafts = state.get("attempts", {}), state.get("drafts", {})
        redo = [i for i in state.get("problems", {}) if attempts.get(i, 1) < MAX_ATTEMPTS]
        if not redo:
            return "assemble_revision" if state.get("instruction") else "assemble"
        by_id = {s["id"]: s for s in state["outline"]}
        return [Send("draft_section", self._task(state, by_id[i], attempt=attempts.get(i, 1) + 1,
                                                 reason="; ".join(state["problems"][i]), previous=drafts.get(i)))
                for i in redo]

    def fan_out(self, state: ProposalState):
        from langgraph.types import Send

        drafts = state.get("drafts", {})
        sends = [Send("draft_section", self._task(state, s, attempt=1, previous=drafts.get(s["id"])))
                 for s in state["outline"] if s["id"] in state["targets"]]
        return sends or ("assemble_revision" if state.get("instruction") else "assemble")

    @staticmethod
    def _task(state: ProposalState, section: dict, *, attempt: int, reason: str | None = None,
              previous: dict | None = None) -> SectionTask:
        return {"section": section, "attempt": attempt, "reason": reason, "previous": previous,
                "client": state["client"], "brief": state.get("brief"), "instruction": state.get("instruction"),
                "history": state.get("history") or []}

    def assemble(self, state: ProposalState) -> dict:
        client = ClientFacts.from_dict(state["client"])
        ordered = self._ordered(state)
        attempt = state.get("summary_attempts", 0) + 1
        title, summary, usage = self._summarize(state, client, ordered, attempt)
        content = self._content(state, client, title, summary, ordered, add_usage(state.get("usage"), usage),
                                summary_redrafted=attempt > 1)
        return {"content": content.model_dump(mode="json"), "usage": usage, "summary_attempts": attempt}

    def check_document(self, state: ProposalState) -> dict:
        """The assembled proposal's title and executive summary: placeholder text, length."""
        content = state["content"]
        problems = document_problems(content["title"], content["executive_summary"])
        if problems and state.get("summary_attempts", 1) >= MAX_ATTEMPTS:  # after the rewrite: warnings
            metadata = {**content["metadata"], "check_warnings": [*content["metadata"].get("check_warnings", []),
                                                                 *problems]}
            return {"summary_problems": problems, "content": {**content, "metadata": metadata}}
        return {"summary_problems": problems}

    def after_check_document(self, state: ProposalState) -> str:
        if state.get("summary_problems") and state.get("summary_attempts", 1) < MAX_ATTEMPTS:
            return "assemble_revision" if state.get("instruction") else "assemble"
        return "save"

    def _summarize(self, state: ProposalState, client: ClientFacts, ordered: list[dict], attempt: int):
        if attempt > 1 and state.get("summary_problems"):
            previous = state.get("content") or {}
            return self.deps.writer.summarize(
                client, state.get("brief"), ordered, reason="; ".join(state["summary_problems"]),
                previous={"title": previous.get("title"), "executive_summary": previous.get("executive_summary")})
        return self.deps.writer.summarize(client, state.get("brief"), ordered)

    def save(self, state: ProposalState) -> dict:
        return {"saved": self.deps.save(dict(state))}

    # revision
    def load_proposal(self, state: ProposalState) -> dict:
        loaded = self.deps.load_proposal(state["proposal_id"])
        return {"base": loaded["base"], "client": loaded["client"], "history": loaded["history"],
                "template": loaded["base"]["metadata"].get("template"), "brief": loaded["base"]["metadata"].get("brief"),
                "started": time.time()}

    def route(self, state: ProposalState) -> dict:
        base = ProposalContent.model_validate(state["base"])
        plan, usage = self.deps.writer.route_revision(base, state["instruction"], state.get("history") or [])
        template = get_template(base.metadata.template) if base.metadata.template else None
        required = [s for s in base.sections if s.id in plan["remove"]
                    and (spec := (template or get_template(None)).spec(s.id)) is not None and spec.required]
        if required:
            names = ", ".join(f"'{s.heading}' ({s.id})" for s in required)
            raise ValidationFailed(
                f"cannot remove {names}: the '{(template or get_template(None)).name}' template requires "
                f"{'them' if len(required) > 1 else 'it'}. Ask to shorten or rewrite it instead, or regenerate "
                "the proposal with another template (proposalflow propose … --template short).",
                [{"field": "instruction", "message": f"would remove the required section {s.id}"} for s in required])
        outline, drafts = [], {}
        for section in base.sections:
            if section.id in plan["remove"]:
                continue
            spec = template.spec(section.id) if template else None
            query = f"{state['instruction']} {section.heading}"
            planned = (PlannedSection.from_spec(spec, query) if spec else
                       PlannedSection(section.id, section.heading, "A section of this proposal.", query,
                                      section.kind, PRICING_CATEGORY if section.kind == "pricing" else None))
            planned.heading = section.heading
            outline.append(planned.as_dict())
            drafts[section.id] = {"id": section.id, "heading": section.heading, "kind": section.kind,
                                  "paragraphs": [p.model_dump(mode="json") for p in section.paragraphs]}
        targets = list(plan["rewrite"])
        taken = {s["id"] for s in outline}
        for added in plan["add"]:
            from .writers import _slug

            slug = _slug(added["heading"])
            while slug in taken:
                slug += "_2"
            taken.add(slug)
            position = next((i for i, s in enumerate(outline) if s["kind"] == "pricing" or s["id"] == "next_steps"),
                            len(outline))
            outline.insert(position, PlannedSection(slug, added["heading"], "A section the user asked for.",
                                                    f"{added['heading']} {added['focus']}",
                                                    focus=added["focus"]).as_dict())
            targets.append(slug)
        return {"route": plan, "outline": outline, "targets": targets, "drafts": drafts, "usage": usage,
                "reply": plan["reply"]}

    def assemble_revision(self, state: ProposalState) -> dict:
        client = ClientFacts.from_dict(state["client"])
        base = ProposalContent.model_validate(state["base"])
        ordered = self._ordered(state)
        usage = None
        title, summary = base.title, base.executive_summary
        plan = state["route"]
        attempt = state.get("summary_attempts", 0) + 1
        if plan["rewrite_summary"] or plan["remove"] or plan["add"] or attempt > 1:
            title, summary, usage = self._summarize(state, client, ordered, attempt)
        content = self._content(state, client, title, summary, ordered, add_usage(state.get("usage"), usage),
                                summary_redrafted=attempt > 1)
        return {"content": content.model_dump(mode="json"), "usage": usage or {},
                "diff_summary": diff_summary(base, content), "summary_attempts": attempt}

    # helpers
    @staticmethod
    def _ordered(state: ProposalState) -> list[dict]:
        drafts = state.get("drafts", {})
        return [drafts[s["id"]] for s in state["outline"] if drafts.get(s["id"], {}).get("paragraphs")]

    def _content(self, state, client: ClientFacts, title: str, summary: str, ordered: list[dict],
                 usage: dict, summary_redrafted: bool = False) -> ProposalContent:
        warnings = list(state.get("warnings") or [])
        present = {d["id"] for d in ordered}
        warnings += [f"{s['heading']}: the section is missing" for s in state["outline"] if s["id"] not in present]
        redrafted = sorted(set(state.get("redrafted") or []) | ({"executive_summary"} if summary_redrafted else set()))
        writer = self.deps.writer
        return ProposalContent(
            title=title, executive_summary=summary,
            client=ClientRef(id=client.id, name=client.name, website=client.website),
            sections=[Section(id=d["id"], heading=d["heading"], kind=d.get("kind", "standard"),
                              paragraphs=[Paragraph.model_validate(p) for p in d["paragraphs"]]) for d in ordered],
            metadata=GenerationMetadata(
                model=writer.model_name, offline=writer.offline, template=state.get("template") or "standard",
                brief=state.get("brief"), token_usage=TokenUsage(**usage),
                generation_seconds=round(time.time() - _later(state.get("started"), self.deps.resumed_started), 3),
                flow_run_id=state.get("flow_run_id"), run_id=state.get("run_id"), client_enriched=client.enriched,
                redrafted_sections=redrafted, check_warnings=warnings))


def _template(name: str | None) -> Template | None:
    try:
        return get_template(name)
    except ValidationFailed:  # a template renamed since the proposal was written: no whole-proposal bound
        return None


def diff_summary(old: ProposalContent, new: ProposalContent) -> str:
    """What changed between two versions, in words: sections rewritten, added, removed; title; summary."""
    changes = []
    if old.title != new.title:
        changes.append(f"title: {old.title!r} → {new.title!r}")
    if old.executive_summary != new.executive_summary:
        changes.append("executive summary rewritten")
    before = {s.id: s for s in old.sections}
    after = {s.id: s for s in new.sections}
    for sid, section in after.items():
        if sid not in before:
            changes.append(f"added '{section.heading}' ({_words(section.body)} words)")
        elif _substance(before[sid]) != _substance(section):  # not `body`: its [n] numbers shift with other sections
            old_cites = {c.key for c in before[sid].citations}
            new_cites = {c.key for c in section.citations}
            cites = f"; sources +{len(new_cites - old_cites)}/-{len(old_cites - new_cites)}" if old_cites != new_cites else ""
            changes.append(f"rewrote '{section.heading}' ({_words(before[sid].body)} → {_words(section.body)} words{cites})")
    for sid, section in before.items():
        if sid not in after:
            changes.append(f"removed '{section.heading}'")
    return "; ".join(changes) if changes else "no change"


def _substance(section: Section) -> list:
    return [(p.text, [c.key for c in p.citations]) for p in section.paragraphs] + [section.heading]


def _words(text: str) -> int:
    return len(text.split())


# --- building the graphs ------------------------------------------------------------------------------
def _retry(deps: GraphDeps):
    from langgraph.types import RetryPolicy

    return RetryPolicy(initial_interval=deps.retry_initial_interval, backoff_factor=2.0, max_interval=30.0,
                       max_attempts=deps.retry_max_attempts, jitter=True, retry_on=transient_errors())


class _Graph:
    """A StateGraph whose nodes also store a resumed run's shifted `started` (GraphDeps.resumed_started)."""

    def __init__(self, graph, deps: GraphDeps):
        self._graph, self._deps = graph, deps

    def add_node(self, name: str, fn: Callable, **kwargs) -> None:
        deps = self._deps

        def node(state):
            update = fn(state)
            if deps.resumed_started is not None and isinstance(update, dict) and "started" not in update:
                update = {**update, "started": deps.resumed_started}
            return update

        self._graph.add_node(name, node, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._graph, name)


def build_generation_graph(deps: GraphDeps, checkpointer=None):
    from langgraph.graph import END, START, StateGraph

    nodes, retry = _Nodes(deps), _retry(deps)
    graph = _Graph(StateGraph(ProposalState), deps)
    graph.add_node("load_client", nodes.load_client, retry_policy=retry)
    graph.add_node("plan", nodes.plan, retry_policy=retry)
    graph.add_node("draft_section", nodes.draft_section, retry_policy=retry)
    graph.add_node("check", nodes.check, retry_policy=retry)
    graph.add_node("assemble", nodes.assemble, retry_policy=retry)
    graph.add_node("check_document", nodes.check_document, retry_policy=retry)
    graph.add_node("save", nodes.save, retry_policy=retry)
    graph.add_edge(START, "load_client")
    graph.add_edge("load_client", "plan")
    graph.add_conditional_edges("plan", nodes.fan_out, ["draft_section", "assemble"])
    graph.add_edge("draft_section", "check")
    graph.add_conditional_edges("check", nodes.after_check, ["draft_section", "assemble"])
    graph.add_edge("assemble", "check_document")
    graph.add_conditional_edges("check_document", nodes.after_check_document, ["assemble", "save"])
    graph.add_edge("save", END)
    return graph.compile(checkpointer=checkpointer, name="generate-proposal")


def build_revision_graph(deps: GraphDeps, checkpointer=None):
    from langgraph.graph import END, START, StateGraph

    nodes, retry = _Nodes(deps), _retry(deps)
    graph = _Graph(StateGraph(ProposalState), deps)
    graph.add_node("load_proposal", nodes.load_proposal, retry_policy=retry)
    graph.add_node("route", nodes.route, retry_policy=retry)
    graph.add_node("draft_section", nodes.draft_section, retry_policy=retry)
    graph.add_node("check", nodes.check, retry_policy=retry)
    graph.add_node("assemble_revision", nodes.assemble_revision, retry_policy=retry)
    graph.add_node("check_document", nodes.check_document, retry_policy=retry)
    graph.add_node("save", nodes.save, retry_policy=retry)
    graph.add_edge(START, "load_proposal")
    graph.add_edge("load_proposal", "route")
    graph.add_conditional_edges("route", nodes.fan_out, ["draft_section", "assemble_revision"])
    graph.add_edge("draft_section", "check")
    graph.add_conditional_edges("check", nodes.after_check, ["draft_section", "assemble_revision"])
    graph.add_edge("assemble_revision", "check_document")
    graph.add_conditional_edges("check_document", nodes.after_check_document, ["assemble_revision", "save"])
    graph.add_edge("save", END)
    return graph.compile(checkpointer=checkpointer, name="revise-proposal")


__all__ = ["GraphDeps", "ProposalState", "build_generation_graph", "build_revision_graph", "transient_errors",
           "diff_summary", "passage_dict", "draft_text"]
