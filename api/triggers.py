"""The flows the API can start: one `FlowTrigger` entry per flow — its Prefect name (= its
deployment's name in prefect.yaml), its entrypoint, the typed parameters a caller may give, and a
pre-flight check that refuses a run bound to fail (an unknown client, a private URL) before it starts.

Adding a flow is one entry in `TRIGGERS`. An entry whose module is not in this checkout is left out.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Literal

import psycopg
from pydantic import Field

from proposalflow.inputs import Input
from proposalflow.errors import NotFound, ValidationFailed
from proposalflow.knowledge.uploads import StoredUpload
from proposalflow.settings import Settings

Check = Callable[[psycopg.Connection, Settings, Any], None]
Prepare = Callable[[Settings, dict], dict]


class _Parameters(Input):
    pass  # a flow's parameters, as a caller gives them


class IngestClientsParameters(_Parameters):
    source: str = Field(min_length=1, max_length=2048, description=(
        "An http(s) URL of a CSV, JSON, JSON Lines or XLSX file, or the name of a file in "
        "PROPOSALFLOW_HOME/imports on the machine that runs the flow"))
    batch_rows: int | None = Field(None, ge=100, le=1_000_000)


class EnrichClientsParameters(_Parameters):
    client_ids: list[uuid.UUID] | None = Field(None, max_length=10_000, description="Default: the clients due")
    stale_days: int = Field(30, ge=0, le=3650)
    limit: int | None = Field(None, ge=1, le=1_000_000)


class EmbedKnowledgeParameters(_Parameters):
    urls: list[str] | None = Field(None, max_length=1000, description="Web pages to embed (http/https)")
    category: str | None = Field(None, max_length=100)
    reembed: bool = Field(False, description="First re-embed every stored document (after a model change)")
    uploads: list[StoredUpload] | None = Field(None, max_length=100, description=(
        "Uploaded originals already in the file store (what POST /api/knowledge/upload starts a run with)"))


class GenerateProposalParameters(_Parameters):
    client_id: uuid.UUID
    brief: str | None = Field(None, max_length=20_000, description="Notes or an RFP excerpt")
    template: Literal["standard", "short", "rfp"] | None = None
    proposal_id: uuid.UUID | None = Field(None, description="Write a new version of this proposal")
    new: bool = Field(False, description="Write anew even if the same request was answered before")
    offline: bool = Field(False, description="Use the offline composer even when a model is configured")


class DeliverProposalParameters(_Parameters):
    proposal_id: uuid.UUID
    send: bool = Field(False, description="Send the email (only when PROPOSALFLOW_ALLOW_SEND is true)")
    target: Literal["google", "local"] | None = None


@dataclass(frozen=True)
class FlowTrigger:
    name: str  # the Prefect flow name, also its deployment's name: runs go to "<name>/<name>"
    entrypoint: str  # "flows.module:function"
    parameters: type[_Parameters]
    summary: str
    check: Check | None = None
    prepare: Prepare | None = None  # API parameters → the flow's (e.g. an import file name → its path)

    @property
    def module(self) -> str:
        return self.entrypoint.split(":")[0]

    @property
    def deployment(self) -> str:
        return f"{self.name}/{self.name}"

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def load(self):
        module, function = self.entrypoint.split(":")
        return getattr(importlib.import_module(module), function)

    def flow_parameters(self, settings: Settings, body: _Parameters) -> dict:
        parameters = body.model_dump(mode="json", exclude_none=True)
        return self.prepare(settings, parameters) if self.prepare else parameters


# --- pre-flight checks: plain reads through the core -------------------------------------------------

_IMPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,254}$")


def _check_url(settings: Settings, url: str, field: str) -> None:
    from proposalflow.errors import UnsafeURL
    from proposalflow.reader.safety import UrlGuard

    try:
        UrlGuard.from_settings(settings).check(url)
    except UnsafeURL as exc:
        raise ValidationFailed(str(exc), [{"field": field, "message": str(exc)}]) from None


def check_ingest(conn: psycopg.Connection, settings: Settings, p: IngestClientsParameters) -> None:
    if p.source.lower().startswith(("http://", "https://")):
        _check_url(settings, p.source, "source")
        return
    folder = settings.home_dir / "imports"
    if not _IMPORT_NAME.match(p.source) or not (folder / p.source).is_file():
        message = (f"{p.source!r} is neither an http(s) URL nor the name of a file in {folder} "
                   "(the API does not read other paths of the server)")
        raise ValidationFailed(message, [{"field": "source", "message": message}])


def prepare_ingest(settings: Settings, parameters: dict) -> dict:
    source = parameters["source"]
    if not source.lower().startswith(("http://", "https://")):
        parameters["source"] = str(settings.home_dir / "imports" / source)
    return parameters


def check_enrich(conn: psycopg.Connection, settings: Settings, p: EnrichClientsParameters) -> None:
    from proposalflow.clients.crud import missing_clients

    if p.client_ids:
        missing = [str(c) for c in missing_clients(conn, p.client_ids)]
        if missing:
            raise ValidationFailed(f"no such client(s): {', '.join(missing[:10])}",
                                   [{"field": "client_ids", "message": f"unknown: {', '.join(missing[:10])}"}])


def check_embed(conn: psycopg.Connection, settings: Settings, p: EmbedKnowledgeParameters) -> None:
    for i, url in enumerate(p.urls or []):
        _check_url(settings, url, f"urls.{i}")
    if not (p.urls or p.reembed or p.uploads) and getattr(settings, "kb_folder", None) is None:
        message = "nothing to embed: give urls, uploads or reembed (no PROPOSALFLOW_KNOWLEDGE_DIR is set)"
        raise ValidationFailed(message, [{"field": "urls", "message": message}])


def check_generate(conn: psycopg.Connection, settings: Settings, p: GenerateProposalParameters) -> None:
    from proposalflow.clients.crud import get_client

    try:
        get_client(conn, p.client_id)
    except NotFound as exc:
        raise ValidationFailed(str(exc), [{"field": "client_id", "message": "no such client"}]) from None
    if p.proposal_id is not None:
        proposal = _proposal(conn, p.proposal_id)
        if proposal is None or proposal.client_id != p.client_id:
            raise ValidationFailed(f"proposal {p.proposal_id} is not a proposal of client {p.client_id}",
                                   [{"field": "proposal_id", "message": "no such proposal for this client"}])


def check_deliver(conn: psycopg.Connection, settings: Settings, p: DeliverProposalParameters) -> None:
    proposal = _proposal(conn, p.proposal_id)
    if proposal is None:
        raise ValidationFailed(f"proposal {p.proposal_id} does not exist",
                               [{"field": "proposal_id", "message": "no such proposal"}])
    if proposal.status not in ("approved", "sent"):
        raise ValidationFailed(f"proposal {p.proposal_id} is '{proposal.status}': only an approved proposal is delivered",
                               [{"field": "proposal_id", "message": f"status is {proposal.status}, not approved"}])


def _proposal(conn: psycopg.Connection, proposal_id: uuid.UUID):
    from proposalflow.proposals.crud import get_summary

    try:
        return get_summary(conn, proposal_id)
    except NotFound:
        return None


TRIGGERS: list[FlowTrigger] = [
    FlowTrigger("ingest-clients", "flows.ingest_clients:ingest_clients", IngestClientsParameters,
                "Ingest a client file (validated, upserted, rejects kept)", check_ingest, prepare_ingest),
    FlowTrigger("enrich-clients", "flows.enrich_clients:enrich_clients", EnrichClientsParameters,
                "Learn about clients from their websites", check_enrich),
    FlowTrigger("embed-knowledge", "flows.embed_knowledge:embed_knowledge", EmbedKnowledgeParameters,
                "Embed web pages (or the knowledge folder) into the knowledge base", check_embed),
    FlowTrigger("generate-proposal", "flows.generate_proposal:generate_proposal", GenerateProposalParameters,
                "Write a grounded, cited proposal for one client", check_generate),
    FlowTrigger("deliver-proposal", "flows.deliver_proposal:deliver_proposal", DeliverProposalParameters,
                "Deliver an approved proposal (Google Doc + Gmail draft, or local files)", check_deliver),
]


def available_triggers() -> dict[str, FlowTrigger]:
    return {t.name: t for t in TRIGGERS if t.available()}
