"""Shared by the proposal tests (core, flows, CLI): a database with the sample knowledge base embedded
(the real knowledge code, the local embedding model) and a few clients, one of them enriched; and a
scripted OpenAI-compatible model for tests/fakes/openai_server.py.

The knowledge database is built once per session as a template and cloned per test.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime, timezone
from importlib import resources
from urllib.parse import urlsplit

import psycopg
from psycopg.types.json import Jsonb

from tests.conftest import create_database

ENRICHED = {
    "schema_version": 1,
    "name": "Northwind Logistics",
    "summary": "Northwind Logistics runs freight forwarding and warehousing for mid-size shippers.",
    "industry": "Logistics",
    "services": ["Freight forwarding", "Warehousing", "Customs brokerage"],
    "target_customers": ["Mid-size manufacturers", "E-commerce brands"],
    "locations": ["Seattle", "Portland"],
    "company_size": "120 employees",
    "sources": {f: [{"url": "https://northwindlogistics.com/about", "fetched_at": "2025-01-10T09:00:00+00:00"}]
                for f in ("summary", "industry", "services", "target_customers", "locations", "company_size")},
    "website": "https://northwindlogistics.com",
    "enriched_at": "2025-01-10T09:00:00+00:00",
}


_templates: dict[str, str] = {}


def knowledge_template(pg_admin_url: str) -> str:
    """The name of a template database with the sample knowledge and three clients (built once per session)."""
    if pg_admin_url not in _templates:
        _templates[pg_admin_url] = build_knowledge_template(pg_admin_url)
    return _templates[pg_admin_url]


def knowledge_database(pg_admin_url: str) -> str:
    """A fresh database cloned from the knowledge template: its URL."""
    return create_database(pg_admin_url, template=knowledge_template(pg_admin_url))


def build_knowledge_template(pg_admin_url: str) -> str:
    """A migrated database with the sample knowledge and three clients; returns its name."""
    from proposalflow.knowledge.documents import folder_sources
    from proposalflow.knowledge.embedders import make_embedder
    from proposalflow.knowledge.ingest import add_documents
    from proposalflow.settings import Settings

    url = create_database(pg_admin_url)
    name = urlsplit(url).path.lstrip("/")
    folder = str(resources.files("proposalflow") / "data" / "knowledge")
    with psycopg.connect(url, autocommit=True) as conn:
        embedder = make_embedder(Settings(PROPOSALFLOW_EMBEDDINGS="local", PROPOSALFLOW_LLM="offline"))
        summary = add_documents(conn, embedder, folder_sources(folder))
        assert summary.chunks > 10 and not summary.failures, summary
        conn.execute("""INSERT INTO clients (name, natural_key, website, domain, enriched_data) VALUES
            ('Northwind Logistics', 'domain:northwindlogistics.com', 'https://northwindlogistics.com',
             'northwindlogistics.com', %s),
            ('Brightleaf Dental Group', 'domain:brightleafdental.com', 'https://brightleafdental.com',
             'brightleafdental.com', NULL),
            ('Copperline Manufacturing', 'domain:copperline-mfg.com', 'https://copperline-mfg.com',
             'copperline-mfg.com', NULL)""", (Jsonb(ENRICHED),))
    return name


def client_id(conn, name: str) -> str:
    return str(conn.execute("SELECT id FROM clients WHERE name = %s", (name,)).fetchone()[0])


class ScriptedModel:
    """Answers the proposal graph's structured-output requests like a model that follows the prompt:
    plans the template's sections, drafts each section from the passages it was given (citing their
    chunk ids and the client facts), summarises, routes revisions by section name.

    Hooks let a test change one answer: `bad_citation` (section ids whose FIRST draft cites a chunk
    that does not exist), `hold` (section ids whose draft request blocks until the event is set).
    """

    def __init__(self, *, bad_citation: set[str] = frozenset(), hold: dict | None = None,
                 revision: dict | None = None, draft_seconds: float = 0.0):
        self.bad_citation = set(bad_citation)
        self.hold = hold or {}
        self.revision = revision
        self.draft_seconds = draft_seconds
        self.drafted: list[str] = []  # section ids, in request order
        self.in_flight = 0
        self.max_in_flight = 0  # the most section drafts the server was answering at once
        self._lock = threading.Lock()

    def __call__(self, request):
        """json_schema structured output, or the same answer as a tool call (function calling)."""
        if request.tools:
            name = request.tools[0]["function"]["name"]
            answer = self.answer(name, request)
            return {"tool_call": {"name": name, "arguments": answer["content"]}}
        fmt = request.body.get("response_format") or {}
        return self.answer(fmt.get("json_schema", {}).get("name"), request)

    def answer(self, schema, request):
        text = request.text
        if schema == "Outline":
            ids = re.findall(r"^- id (\w+): ([^—\n]+) —", text, flags=re.M)
            return {"content": {"sections": [
                {"id": sid, "heading": heading.strip(), "query": f"{heading.strip()} marketing services",
                 "focus": f"what {heading.strip().lower()} means for this client"} for sid, heading in ids]}}
        if schema == "SectionDraft":
            sid = re.search(r"\(id (\w+)\) of our proposal", text).group(1)
            with self._lock:
                self.drafted.append(sid)
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                event = self.hold.get(sid)
                if event is not None:
                    event.wait(120)
                time.sleep(self.draft_seconds)
            finally:
                with self._lock:
                    self.in_flight -= 1
            chunks = [int(c) for c in re.findall(r"^\[chunk (\d+)\]", text, flags=re.M)]
            facts = [f for f in re.findall(r"^\[fact (\w+)\] .*\(source: ", text, flags=re.M)]
            redraft = "failed our check" in text
            if sid in self.bad_citation and not redraft:
                chunks = [987654321]
            instruction = re.search(r"The user now asks: (.+)", text)
            extra = f" As you asked: {instruction.group(1).strip()}." if instruction else ""
            paragraphs = [{"text": f"Drafted {sid} paragraph grounded in our knowledge base, written for this "
                                   f"client with concrete detail and no filler.{extra}",
                           "chunk_ids": chunks[:2], "fact_fields": facts[:1]}]
            if len(chunks) > 2 and "shorter" not in text.split("The user now asks:")[-1]:
                paragraphs.append({"text": f"A second {sid} paragraph that relies on one more passage we retrieved.",
                                   "chunk_ids": chunks[2:3], "fact_fields": []})
            return {"content": {"paragraphs": paragraphs}}
        if schema == "Summary":
            return {"content": {"title": "Proposal: growth marketing for the client",
                                "executive_summary": "We propose a focused programme. It builds on our services."}}
        if schema == "RevisionPlan":
            if self.revision is not None:
                return {"content": self.revision}
            asked = text.split("The user now asks:")[-1].lower()
            ids = re.findall(r"^- id (\w+): ([^—\n]+) —", text, flags=re.M)
            hit = [sid for sid, heading in ids if sid.replace("_", " ") in asked or heading.lower().split()[0] in asked]
            return {"content": {"rewrite_section_ids": hit, "remove_section_ids": [], "add_sections": [],
                                "rewrite_summary": False, "reply": f"I will rewrite {', '.join(hit)}."}}
        return {"content": "plain answer"}


def requests_for(server, schema: str) -> list[dict]:
    return [body for path, body in server.requests if path.endswith("/chat/completions")
            and (body.get("response_format") or {}).get("json_schema", {}).get("name") == schema]


def section_of(body: dict) -> str:
    text = "\n".join(str(m.get("content")) for m in body["messages"])
    return re.search(r"\(id (\w+)\) of our proposal", text).group(1)


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def dumps(value) -> str:
    return json.dumps(value, default=str)
