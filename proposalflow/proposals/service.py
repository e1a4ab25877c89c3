"""What the CLI, the API and the flows call: generate, revise, read.

    generate(conn, client_id, brief=None, template=None) -> GenerationResult   # a new proposal (or --proposal: a new version)
    revise(conn, proposal_id, "make the pricing shorter") -> RevisionResult     # one conversation turn, a new version
    get(conn, proposal_id, version=None) -> ProposalRecord
    versions(conn, proposal_id) / conversation(conn, proposal_id) / list_proposals(conn, …)
    transition(conn, proposal_id, "in_review")                                 # the status machine
    sweep_abandoned_runs(conn)   # runs killed > 24 h ago and never resumed → failed (generate calls it too)

`conn` is the caller's connection (autocommit or not: each saved step commits). A run also opens
one more connection to the same database for its checkpoints and its run lock.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import psycopg

from ..errors import Conflict, IntegrationFailed, NotFound, ProposalflowError, ValidationFailed
from ..settings import Settings, get_settings
from . import store
from .facts import ClientFacts, load_client
from .graph import GraphDeps, build_generation_graph, build_revision_graph, transient_errors
from .schema import ProposalContent, ProposalRecord
from .status import transition  # noqa: F401 - part of this module's interface
from .templates import get_template
from .writers import Writer, make_writer

Progress = Callable[[str], None]


@dataclass
class GenerationResult:
    proposal_id: str
    version: int
    run_id: str
    resumed: bool  # an interrupted run of the same request was continued from its checkpoints
    title: str
    model: str
    offline: bool
    sections: int
    citations: int
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    token_usage: dict = field(default_factory=dict)
    reused: bool = False  # the same request had already been answered: that proposal, no new writing

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RevisionResult(GenerationResult):
    diff_summary: str = ""
    reply: str = ""


# --- generation --------------------------------------------------------------------------------------
def generate(conn: psycopg.Connection, client_id: str | None, brief: str | None = None, template: str | None = None,
             *, proposal_id: str | None = None, new: bool = False, settings: Settings | None = None,
             writer: Writer | None = None, retrieve: Callable | None = None, flow_run_id: str | None = None,
             on_progress: Progress | None = None) -> GenerationResult:
    """Write a proposal for a client; with `proposal_id`, write a new version of that proposal instead.

    Idempotent: the same request (client, brief, template) that was already answered returns that
    proposal (`reused`), unless `new` asks for another one. The same request whose run was
    interrupted (killed process, failing model) resumes from its checkpoints: finished sections are
    not drafted again.
    """
    settings = settings or get_settings()
    template_name = get_template(template).name
    brief = brief.strip() if brief and brief.strip() else None
    base_version = None
    if proposal_id is not None:
        owner, base_version = store.client_of(conn, proposal_id)
        if client_id and owner != str(client_id):
            raise ValidationFailed(f"proposal {proposal_id} belongs to another client",
                                   [{"field": "proposal_id", "message": "belongs to another client"}])
        client_id = owner
    if not client_id:
        raise ValidationFailed("name the client to write a proposal for", [{"field": "client_id", "message": "missing"}])
    facts = load_client(conn, client_id)  # NotFound before anything is written
    key = store.request_key("generate", client_id=facts.id, proposal_id=proposal_id, base_version=base_version,
                            template=template_name, brief=brief, new=new)
    if proposal_id is None and not new:
        done = store.completed_run(conn, key)
        if done:
            run_id, existing, version = done
            record = store.get(conn, existing, version)
            (on_progress or (lambda m: None))(f"already written: proposal {existing} version {version} "
                                              "(ask for a new one to write another)")
            result = _result(GenerationResult, {"saved": {"proposal_id": existing, "version": version}},
                             record.content, store.Run(run_id, existing, facts.id, "generate", False, 0), False)
            result.reused = True
            return result
    writer = writer or make_writer(settings)
    for swept in store.sweep_abandoned_runs(conn):  # runs killed long ago no one resumed: failed, not generating
        (on_progress or (lambda m: None))(f"marked abandoned run {swept['run_id']} failed "
                                          f"(proposal {swept['proposal_id']})")
    with _RunContext(conn, settings, retrieve) as ctx:
        run = store.start_run(conn, ctx.run_conn, kind="generate", key=key, client_id=facts.id,
                              proposal_id=proposal_id, brief=brief, template=template_name, flow_run_id=flow_run_id)
        deps = ctx.deps(writer, save=lambda state: ctx.locked(store.save_version, conn, run_id=state["run_id"],
                                                                proposal_id=run.proposal_id, content=state["content"],
                                                                kind="generated", flow_run_id=state.get("flow_run_id")))
        graph = build_generation_graph(deps, ctx.checkpointer())
        initial = {"run_id": run.id, "flow_run_id": flow_run_id, "client_id": facts.id, "proposal_id": run.proposal_id,
                   "brief": brief, "template": template_name}
        final, resumed = ctx.run_graph(graph, run, initial, on_progress)
    content = ProposalContent.model_validate(final["content"])
    return _result(GenerationResult, final, content, run, resumed)


# --- revision ----------------------------------------------------------------------------------------
def revise(conn: psycopg.Connection, proposal_id: str, instruction: str, *, settings: Settings | None = None,
           writer: Writer | None = None, retrieve: Callable | None = None, flow_run_id: str | None = None,
           on_progress: Progress | None = None) -> RevisionResult:
    """One turn of the conversation about a proposal: rewrite what the instruction concerns, save a new version.

    The instruction and the answer (with a summary of the changes) join the proposal's message
    history, which the next turn sees.
    """
    instruction = (instruction or "").strip()
    if not instruction:
        raise ValidationFailed("say what to change", [{"field": "instruction", "message": "empty"}])
    settings = settings or get_settings()
    client_id, version = store.client_of(conn, proposal_id)
    if version < 1:
        raise Conflict(f"proposal {proposal_id} has no saved version yet: generate it first")
    from .status import ensure_content_editable

    ensure_content_editable(conn, proposal_id)
    writer = writer or make_writer(settings)
    key = store.request_key("revise", proposal_id=proposal_id, base_version=version, instruction=instruction)
    with _RunContext(conn, settings, retrieve) as ctx:
        run = store.start_run(conn, ctx.run_conn, kind="revise", key=key, client_id=client_id,
                              proposal_id=proposal_id, instruction=instruction, flow_run_id=flow_run_id)

        def load_proposal(pid: str) -> dict:
            record = ctx.locked(store.get, conn, pid, version)
            return {"base": record.content.model_dump(mode="json"),
                    "client": ctx.locked(load_client, conn, client_id).as_dict(),
                    "history": [{"role": m["role"], "content": m["content"]}
                                for m in ctx.locked(store.messages, conn, pid, 20)]}

        def save(state: dict) -> dict:
            return ctx.locked(store.save_version, conn, run_id=state["run_id"], proposal_id=proposal_id,
                              content=state["content"], kind="revised", flow_run_id=state.get("flow_run_id"),
                              instruction=instruction, diff_summary=state.get("diff_summary"),
                              reply=state.get("reply"), base_version=version)

        deps = ctx.deps(writer, save=save, load_proposal=load_proposal)
        graph = build_revision_graph(deps, ctx.checkpointer())
        initial = {"run_id": run.id, "flow_run_id": flow_run_id, "client_id": client_id, "proposal_id": proposal_id,
                   "instruction": instruction}
        final, resumed = ctx.run_graph(graph, run, initial, on_progress)
    content = ProposalContent.model_validate(final["content"])
    result = _result(RevisionResult, final, content, run, resumed)
    result.diff_summary, result.reply = final.get("diff_summary", ""), final.get("reply", "")
    return result


# --- reads -------------------------------------------------------------------------------------------
def get(conn: psycopg.Connection, proposal_id: str, version: int | None = None) -> ProposalRecord:
    return store.get(conn, proposal_id, version)


def versions(conn: psycopg.Connection, proposal_id: str) -> list[dict]:
    store.client_of(conn, proposal_id)  # NotFound for an unknown proposal
    return store.versions(conn, proposal_id)


def conversation(conn: psycopg.Connection, proposal_id: str) -> list[dict]:
    store.client_of(conn, proposal_id)
    return store.messages(conn, proposal_id)


def sweep_abandoned_runs(conn: psycopg.Connection, *, older_than_hours: float = store.RESUME_WITHIN_HOURS) -> list[dict]:
    """Mark runs killed before the resume window and never resumed `failed` (their proposals too, if still
    `generating`); see store.sweep_abandoned_runs."""
    return store.sweep_abandoned_runs(conn, older_than_hours=older_than_hours)


def list_proposals(conn: psycopg.Connection, *, client_id: str | None = None, status: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[dict]:
    return store.list_proposals(conn, client_id=client_id, status=status, limit=limit, offset=offset)


# --- running a graph ---------------------------------------------------------------------------------
_embedders: dict[tuple, Any] = {}
_embedders_lock = threading.Lock()


def knowledge_retriever(conn: psycopg.Connection, settings: Settings, lock: threading.RLock) -> Callable:
    """Hybrid search over the knowledge base (proposalflow.knowledge.search), safe to call from the graph's threads."""
    from ..knowledge.embedders import make_embedder
    from ..knowledge.search import search

    key = (settings.embeddings_provider, settings.embedding_model, settings.openai_base_url)
    with _embedders_lock:
        if key not in _embedders:
            _embedders[key] = make_embedder(settings)
        embedder = _embedders[key]

    def retrieve(query: str, k: int, category: str | None) -> list:
        with lock:
            return search(conn, embedder, query, k=k, category=category)

    return retrieve


class _RunContext:
    """The run's own connection (checkpoints + run lock), the data connection's lock, the graph's deps."""

    def __init__(self, conn: psycopg.Connection, settings: Settings, retrieve: Callable | None):
        self.conn, self.settings, self._retrieve = conn, settings, retrieve
        self.lock = threading.RLock()  # the caller's connection is shared by the graph's threads
        self.run_conn: psycopg.Connection | None = None
        self._saver = None

    def __enter__(self) -> "_RunContext":
        self.run_conn = sibling_connection(self.conn)
        return self

    def __exit__(self, *exc) -> None:
        self.run_conn.close()  # ends the session: releases the run lock

    def locked(self, fn: Callable, *args, **kwargs):
        with self.lock:
            return fn(*args, **kwargs)

    def deps(self, writer: Writer, *, save: Callable, load_proposal: Callable | None = None) -> GraphDeps:
        retrieve = self._retrieve or knowledge_retriever(self.conn, self.settings, self.lock)

        def chunks_exist(ids: Iterable[int]) -> set[int]:
            ids = sorted({int(i) for i in ids})
            if not ids:
                return set()
            with self.lock:
                return stored_chunks(self.conn, ids)

        self._deps = GraphDeps(writer=writer, retrieve=retrieve, chunks_exist=chunks_exist,
                               load_client=lambda cid: self.locked(load_client, self.conn, cid), save=save,
                               load_proposal=load_proposal, passages_per_section=self.settings.proposal_passages,
                               retry_initial_interval=self.settings.proposal_retry_seconds)
        return self._deps

    def checkpointer(self):
        from langgraph.checkpoint.postgres import PostgresSaver

        self._saver = PostgresSaver(self.run_conn)
        return self._saver

    def run_graph(self, graph, run: store.Run, initial: dict, on_progress: Progress | None) -> tuple[dict, bool]:
        config = {"configurable": {"thread_id": run.id}, "max_concurrency": self.settings.proposal_concurrency,
                  "recursion_limit": 50}
        say = on_progress or (lambda message: None)
        try:
            snapshot = graph.get_state(config)
            resumed = bool(snapshot.next)
            if resumed and snapshot.created_at and snapshot.values.get("started"):
                from datetime import datetime

                dead = max(0.0, time.time() - datetime.fromisoformat(snapshot.created_at).timestamp())
                self._deps.resumed_started = snapshot.values["started"] + dead  # not counted as generation time
            if resumed:
                done = sorted(snapshot.values.get("drafts", {}))
                say(f"resuming run {run.id} (attempt {run.attempts}) at {', '.join(snapshot.next)}"
                    + (f"; sections already drafted: {', '.join(done)}" if done else ""))
            started = time.perf_counter()
            for update in graph.stream(None if resumed else initial, config, stream_mode="updates",
                                       durability="sync"):
                for node, values in update.items():
                    message = _progress(node, values or {})
                    if message:
                        say(message)
            final = graph.get_state(config).values
            if "saved" not in final:
                raise ProposalflowError(f"run {run.id} ended without saving (stopped at {graph.get_state(config).next})")
            say(f"saved version {final['saved']['version']} of proposal {final['saved']['proposal_id']} "
                f"in {time.perf_counter() - started:.1f} s")
        except BaseException as exc:
            with self.lock:
                store.fail_run(self.conn, run, f"{type(exc).__name__}: {exc}")
            if isinstance(exc, ValidationFailed):  # not transient (a required section missing, a refused revision):
                self._saver.delete_thread(run.id)  # the same request again starts afresh instead of resuming it
            if isinstance(exc, transient_errors()) and not isinstance(exc, ProposalflowError):
                raise IntegrationFailed(f"proposal run {run.id}: {type(exc).__name__}: {exc} (after retries; "
                                        "run the same request again to resume)") from exc
            raise
        self._saver.delete_thread(run.id)  # the version is saved: its checkpoints are no longer needed
        return final, resumed


def _progress(node: str, values: dict) -> str | None:
    if node == "load_client":
        client = ClientFacts.from_dict(values["client"])
        return f"client {client.name}: " + (f"{len(client.facts)} enrichment facts" if client.enriched else
                                             "not enriched yet (fewer client specifics)")
    if node == "plan":
        return f"planned {len(values['outline'])} sections: " + ", ".join(s["id"] for s in values["outline"])
    if node == "route":
        return f"revision concerns: {', '.join(values['targets']) or 'no section rewrite'}" + (
            f"; removing {', '.join(values['route']['remove'])}" if values["route"]["remove"] else "")
    if node == "draft_section":
        for sid, draft in values.get("drafts", {}).items():
            cites = sum(len(p["citations"]) for p in draft["paragraphs"])
            again = "redrafted" if values.get("redrafted") else "drafted"
            return f"{again} '{draft['heading']}': {len(draft['paragraphs'])} paragraphs, {cites} citations"
    if node == "check":
        problems = values.get("problems") or {}
        if not problems:
            return "check passed"
        return "check: " + "; ".join(f"{sid}: {', '.join(p)}" for sid, p in problems.items())
    return None


def sibling_connection(conn: psycopg.Connection) -> psycopg.Connection:
    """A new autocommit connection to the same database as `conn` (same user, password, options)."""
    from psycopg.conninfo import make_conninfo

    info = conn.info
    kwargs = {"password": info.password} if info.password else {}
    return psycopg.connect(make_conninfo(info.dsn, **kwargs), autocommit=True, connect_timeout=15,
                           prepare_threshold=conn.prepare_threshold)


def stored_chunks(conn: psycopg.Connection, ids: list[int]) -> set[int]:
    try:
        from ..knowledge.search import chunks_exist
    except ImportError:  # the knowledge base module predates chunks_exist
        return {r[0] for r in conn.execute("SELECT id FROM knowledge_chunks WHERE id = ANY(%s)", (ids,))}
    return set(chunks_exist(conn, ids))


def _result(cls, final: dict, content: ProposalContent, run: store.Run, resumed: bool):
    meta = content.metadata
    return cls(proposal_id=final["saved"]["proposal_id"], version=final["saved"]["version"], run_id=run.id,
               resumed=resumed, title=content.title, model=meta.model, offline=meta.offline,
               sections=len(content.sections), citations=len(content.references), warnings=meta.check_warnings,
               seconds=meta.generation_seconds, token_usage=meta.token_usage.model_dump())


__all__ = ["generate", "revise", "get", "versions", "conversation", "list_proposals", "transition", "sweep_abandoned_runs",
           "GenerationResult", "RevisionResult", "knowledge_retriever", "NotFound"]
