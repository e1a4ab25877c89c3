"""Who writes: a chat model (`ModelWriter`) or the offline composer (`composer.OfflineComposer`).

Both answer the graph's four questions — plan an outline, draft a section, summarise, route a
revision — with plain dicts (what the graph checkpoints), and report their token usage.

    writer = make_writer(settings)      # ModelWriter when a model is configured, else OfflineComposer
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, Any, Protocol

from ..settings import Settings, get_settings
from . import prompts
from .facts import ClientFacts
from .schema import ChunkCitation, FactCitation
from .templates import PlannedSection, Template, fill_query

if TYPE_CHECKING:
    from .schema import ProposalContent

WRITER_CLIENT_RETRIES = 1  # the openai client's own retries per call, for the proposal writer
Usage = dict  # {"input_tokens", "output_tokens", "total_tokens", "calls"}
NO_USAGE: Usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "calls": 0}


class Writer(Protocol):
    offline: bool

    @property
    def model_name(self) -> str: ...

    def plan(self, client: ClientFacts, brief: str | None, template: Template,
             has_pricing: bool) -> tuple[list[PlannedSection], Usage]: ...

    def draft(self, client: ClientFacts, brief: str | None, section: PlannedSection, passages: list[dict], *,
              reason: str | None = None, previous: dict | None = None, instruction: str | None = None,
              history: list[dict] | None = None) -> tuple[dict, Usage]: ...

    def summarize(self, client: ClientFacts, brief: str | None, drafts: list[dict], *, reason: str | None = None,
                  previous: dict | None = None) -> tuple[str, str, Usage]: ...

    def route_revision(self, content: "ProposalContent", instruction: str,
                       history: list[dict]) -> tuple[dict, Usage]: ...


def make_writer(settings: Settings | None = None, *, timeout: float | None = None,
                max_retries: int | None = None) -> Writer:
    """The chat model from settings (OPENAI_BASE_URL: any OpenAI-compatible server), or the offline composer."""
    from ..llm import make_chat_model
    from .composer import OfflineComposer

    settings = settings or get_settings()
    kwargs: dict[str, Any] = {}
    if timeout is not None:
        kwargs["timeout"] = timeout
    # one retry in the openai client: the graph's nodes retry (3 attempts) and Prefect retries the task (3 runs),
    # so the client's own default of 3 would make one failing call 4 × 3 × 3 = 36 requests
    kwargs["max_retries"] = WRITER_CLIENT_RETRIES if max_retries is None else max_retries
    model = make_chat_model(settings, **kwargs)
    if model is None:
        return OfflineComposer()
    limiter = rate_limiter(settings.openai_base_url, getattr(settings, "llm_rpm", 3000))
    for each in _models(model):
        each.rate_limiter = limiter  # shared by every proposal this process writes (a batch, the API)
    return ModelWriter(model, settings.llm_model, method=getattr(settings, "llm_structured_method", "json_schema"))


_limiters: dict[tuple, Any] = {}
_limiters_lock = threading.Lock()


def rate_limiter(base_url: str | None, requests_per_minute: int):
    """One token bucket per (server, rate) and process: PROPOSALFLOW_LLM_RPM requests a minute, in bursts of
    at most a second's worth."""
    from langchain_core.rate_limiters import InMemoryRateLimiter

    key = (base_url, requests_per_minute)
    with _limiters_lock:
        if key not in _limiters:
            per_second = requests_per_minute / 60
            _limiters[key] = InMemoryRateLimiter(requests_per_second=per_second, check_every_n_seconds=0.02,
                                                 max_bucket_size=max(1.0, per_second))
        return _limiters[key]


def _models(model) -> list:
    from langchain_core.runnables import RunnableWithFallbacks

    return [model.runnable, *model.fallbacks] if isinstance(model, RunnableWithFallbacks) else [model]


# --- drafts as plain dicts ----------------------------------------------------------------------------
def chunk_citation(passage: dict) -> dict:
    return ChunkCitation(chunk_id=int(passage["chunk_id"]), document_id=_str(passage.get("document_id")),
                         title=passage.get("title"), source_uri=passage.get("source_uri")).model_dump(mode="json")


def fact_citation(client: ClientFacts, field: str) -> dict:
    citation = client.citation(field)
    if citation is None:  # a fact without a source (or no such fact): kept, so the check names it
        return {"kind": "fact", "field": field, "url": "", "fetched_at": None}
    return citation.model_dump(mode="json")


def make_draft(section: PlannedSection, paragraphs: list[dict]) -> dict:
    return {"id": section.id, "heading": section.heading, "kind": section.kind, "paragraphs": paragraphs}


def draft_text(draft: dict) -> str:
    return "\n\n".join(p["text"] for p in draft.get("paragraphs", []))


def add_usage(a: Usage | None, b: Usage | None) -> Usage:
    a, b = a or NO_USAGE, b or NO_USAGE
    return {k: int(a.get(k, 0)) + int(b.get(k, 0)) for k in NO_USAGE}


def _str(value) -> str | None:
    return None if value is None else str(value)


# --- a chat model -------------------------------------------------------------------------------------
_INLINE_CITATION = re.compile(r"\s*\[(chunk|fact)\s+([\w.-]+)\]")


class ModelWriter:
    """A LangChain chat model (ChatOpenAI, with its fallback model if configured) with structured output."""

    offline = False

    def __init__(self, model, model_name: str, method: str = "json_schema"):
        self._model = model
        self._name = model_name
        self._method = method  # "json_schema", or "function_calling" for servers without json_schema
        self._runnables: dict[type, Any] = {}
        self._lock = threading.Lock()
        self._models_used: set[str] = set()

    @property
    def model_name(self) -> str:
        used = sorted(self._models_used - {self._name})
        return self._name + (f" (fallback used: {', '.join(used)})" if used else "")

    def _structured(self, schema: type):
        """Structured output per model, fallbacks chained here: `.with_fallbacks()` wrappers have no
        `with_structured_output`. Each model's chain raises on a malformed answer (include_raw=True returns
        the parse error as data), so a malformed answer from the primary goes to the fallback too."""
        from langchain_core.runnables import RunnableLambda

        with self._lock:
            if schema not in self._runnables:
                models = _models(self._model)
                strict = RunnableLambda(lambda answer: _well_formed(schema, answer), name="well_formed")
                chains = [m.with_structured_output(schema, method=self._method, include_raw=True) | strict
                          for m in models]
                self._runnables[schema] = chains[0].with_fallbacks(chains[1:]) if len(chains) > 1 else chains[0]
            return self._runnables[schema]

    def _ask(self, schema: type, messages: list[tuple[str, str]]):
        answer = self._structured(schema).invoke(messages)  # malformed: OutputParserException, the node retries
        raw, parsed = answer["raw"], answer["parsed"]
        name = (getattr(raw, "response_metadata", None) or {}).get("model_name")
        if name:
            with self._lock:
                self._models_used.add(name)
        meta = getattr(raw, "usage_metadata", None) or {}
        usage = {"input_tokens": meta.get("input_tokens", 0), "output_tokens": meta.get("output_tokens", 0),
                 "total_tokens": meta.get("total_tokens", 0), "calls": 1}
        return parsed, usage

    def plan(self, client, brief, template, has_pricing):
        specs = [s for s in template.sections if s.kind != "pricing" or has_pricing]
        outline, usage = self._ask(prompts.Outline, prompts.plan_messages(client, brief, template, specs, has_pricing))
        answered = {s.id: s for s in outline.sections}
        sections: list[PlannedSection] = []
        for spec in specs:  # every template section, in template order, whatever the model did
            default_query = fill_query(spec.query, name=client.name, industry=client.text("industry"),
                                       services=client.items("services"), brief=brief)
            got = answered.pop(spec.id, None)
            sections.append(PlannedSection.from_spec(
                spec, (got.query.strip() if got and got.query.strip() else default_query), got.focus if got else ""))
            if got and got.heading.strip():
                sections[-1].heading = got.heading.strip()
        extras = [s for s in outline.sections if s.id in answered][:template.max_extra_sections]
        taken = {s.id for s in sections}
        for extra in extras:
            slug = _slug(extra.id or extra.heading)
            if slug in taken or not extra.heading.strip():
                continue
            taken.add(slug)
            position = next((i for i, s in enumerate(sections) if s.kind == "pricing" or s.id == "next_steps"),
                            len(sections))
            sections.insert(position, PlannedSection(slug, extra.heading.strip(), "A section the brief calls for.",
                                                     extra.query or extra.heading, focus=extra.focus))
        return sections, usage

    def draft(self, client, brief, section, passages, *, reason=None, previous=None, instruction=None, history=None):
        answer, usage = self._ask(prompts.SectionDraft, prompts.draft_messages(
            client, brief, section, passages, reason=reason, previous=previous, instruction=instruction,
            history=history))
        by_id = {int(p["chunk_id"]): p for p in passages}
        paragraphs = []
        for paragraph in answer.paragraphs:
            chunk_ids = list(paragraph.chunk_ids)
            fields = list(paragraph.fact_fields)
            for kind, ref in _INLINE_CITATION.findall(paragraph.text):  # markers the model put in the prose
                if kind == "chunk" and ref.isdigit():
                    chunk_ids.append(int(ref))
                elif kind == "fact":
                    fields.append(ref)
            text = _INLINE_CITATION.sub("", paragraph.text).strip()
            if not text:
                continue
            citations = []
            for chunk_id in dict.fromkeys(chunk_ids):
                passage = by_id.get(chunk_id)
                citations.append(chunk_citation(passage) if passage else
                                 {"kind": "chunk", "chunk_id": chunk_id, "document_id": None, "title": None,
                                  "source_uri": None})
            citations += [fact_citation(client, f) for f in dict.fromkeys(fields)]
            paragraphs.append({"text": text, "citations": citations})
        return make_draft(section, paragraphs), usage

    def summarize(self, client, brief, drafts, *, reason=None, previous=None):
        answer, usage = self._ask(prompts.Summary, prompts.summary_messages(
            client, brief, [(d["heading"], draft_text(d)) for d in drafts], reason=reason, previous=previous))
        return answer.title.strip(), answer.executive_summary.strip(), usage

    def route_revision(self, content, instruction, history):
        plan, usage = self._ask(prompts.RevisionPlan, prompts.revision_messages(content, instruction, history))
        known = {s.id for s in content.sections}
        return {
            "rewrite": [i for i in dict.fromkeys(plan.rewrite_section_ids) if i in known],
            "remove": [i for i in dict.fromkeys(plan.remove_section_ids) if i in known],
            "add": [{"heading": a.heading.strip(), "focus": a.focus} for a in plan.add_sections if a.heading.strip()],
            "rewrite_summary": plan.rewrite_summary,
            "reply": plan.reply.strip(),
        }, usage


def _well_formed(schema: type, answer: dict) -> dict:
    """The structured answer, or OutputParserException when the model's answer did not parse."""
    from langchain_core.exceptions import OutputParserException

    error = answer.get("parsing_error")
    if isinstance(error, OutputParserException):
        raise error
    if error is not None:
        raise OutputParserException(f"{schema.__name__}: {error}") from error
    if answer.get("parsed") is None:
        raise OutputParserException(f"the model gave no structured answer for {schema.__name__}")
    return answer


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40] or "section"
