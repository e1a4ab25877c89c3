"""What a proposal is: the pydantic model stored in `proposals.content` (and in every version).

The source of truth of a section is its paragraphs, each with the citations it relies on: a knowledge
chunk (`ChunkCitation`) or a fact about the client with the web page it came from (`FactCitation`).
From them the model derives, on validation, the numbered `references` of the whole proposal and
each section's Markdown `body` with `[n]` markers — so renderers (docx, html, Google Docs) can use
`body` + `references` and never number anything themselves.

    content = ProposalContent.model_validate(row["content"])
    content.to_markdown()        # the whole document, references at the end
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal, Union

from pydantic import BaseModel, Field, model_validator

SCHEMA_VERSION = 1
PROMPT_VERSION = "proposal-prompts/1"
OFFLINE_MODEL = "offline composer — no language model wrote this"


class ChunkCitation(BaseModel):
    """A passage of the knowledge base (`knowledge_chunks.id`)."""

    kind: Literal["chunk"] = "chunk"
    chunk_id: int
    document_id: str | None = None
    title: str | None = None
    source_uri: str | None = None

    @property
    def key(self) -> tuple:
        return ("chunk", self.chunk_id)

    @property
    def label(self) -> str:
        return self.title or self.source_uri or f"knowledge chunk {self.chunk_id}"


class FactCitation(BaseModel):
    """A fact about the client from its enrichment (`clients.enriched_data`): the field and its source page."""

    kind: Literal["fact"] = "fact"
    field: str
    url: str
    fetched_at: datetime | None = None

    @property
    def key(self) -> tuple:
        return ("fact", self.field, self.url)

    @property
    def label(self) -> str:
        return f"client website ({self.field.replace('_', ' ')})"


Citation = Annotated[Union[ChunkCitation, FactCitation], Field(discriminator="kind")]


class Paragraph(BaseModel):
    text: str  # Markdown, without citation markers
    citations: list[Citation] = Field(default_factory=list)


class Reference(BaseModel):
    """One numbered source of the proposal; `[number]` markers in section bodies point to it."""

    number: int
    kind: Literal["chunk", "fact"]
    label: str
    url: str | None = None
    chunk_id: int | None = None
    field: str | None = None


class Section(BaseModel):
    id: str  # stable slug within a proposal: "understanding", "approach", "pricing", …
    heading: str
    kind: Literal["standard", "pricing"] = "standard"  # "pricing": the pricing and timeline section
    paragraphs: list[Paragraph]
    # derived on validation of the enclosing ProposalContent:
    body: str = ""  # Markdown with [n] citation markers
    citations: list[Citation] = Field(default_factory=list)  # every citation of the section, once


class ClientRef(BaseModel):
    id: str
    name: str
    website: str | None = None


class TokenUsage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    calls: int = 0

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(input_tokens=self.input_tokens + other.input_tokens,
                          output_tokens=self.output_tokens + other.output_tokens,
                          total_tokens=self.total_tokens + other.total_tokens,
                          calls=self.calls + other.calls)


class GenerationMetadata(BaseModel):
    model: str  # the chat model's name, or OFFLINE_MODEL
    offline: bool
    prompt_version: str = PROMPT_VERSION
    template: str
    brief: str | None = None
    token_usage: TokenUsage = Field(default_factory=TokenUsage)
    generation_seconds: float = 0.0
    generated_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    flow_run_id: str | None = None  # the Prefect flow run, when a flow made it
    run_id: str | None = None  # proposal_runs.id (the LangGraph thread)
    client_enriched: bool = False  # False: the client had no enrichment, so fewer client specifics
    redrafted_sections: list[str] = Field(default_factory=list)  # failed the check once, drafted again
    check_warnings: list[str] = Field(default_factory=list)  # problems still there after the redraft


class ProposalContent(BaseModel):
    """`proposals.content` and `proposal_versions.content`."""

    schema_version: int = SCHEMA_VERSION
    title: str
    client: ClientRef
    executive_summary: str
    sections: list[Section]
    references: list[Reference] = Field(default_factory=list)  # derived
    metadata: GenerationMetadata

    @model_validator(mode="after")
    def _derive_references_and_bodies(self) -> "ProposalContent":
        numbers: dict[tuple, int] = {}
        references: list[Reference] = []
        for section in self.sections:
            seen: dict[tuple, Citation] = {}
            lines = []
            for paragraph in section.paragraphs:
                markers = []
                for citation in paragraph.citations:
                    if citation.key not in numbers:
                        numbers[citation.key] = len(numbers) + 1
                        references.append(_reference(numbers[citation.key], citation))
                    seen.setdefault(citation.key, citation)
                    marker = f"[{numbers[citation.key]}]"
                    if marker not in markers:
                        markers.append(marker)
                text = paragraph.text.strip()
                lines.append(f"{text} {''.join(markers)}" if markers else text)
            section.body = "\n\n".join(lines)
            section.citations = list(seen.values())
        self.references = references
        return self

    @property
    def offline(self) -> bool:
        return self.metadata.offline

    def section(self, section_id: str) -> Section | None:
        return next((s for s in self.sections if s.id == section_id), None)

    @property
    def pricing(self) -> Section | None:
        return next((s for s in self.sections if s.kind == "pricing"), None)

    def chunk_ids(self) -> set[int]:
        return {c.chunk_id for s in self.sections for c in s.citations if isinstance(c, ChunkCitation)}

    def to_markdown(self) -> str:
        parts = [f"# {self.title}", "", "## Executive summary", "", self.executive_summary.strip(), ""]
        for section in self.sections:
            parts += [f"## {section.heading}", "", section.body, ""]
        if self.references:
            parts += ["## References", ""]
            for ref in self.references:
                where = f" — {ref.url}" if ref.url else ""
                chunk = f" (chunk {ref.chunk_id})" if ref.chunk_id is not None else ""
                parts.append(f"{ref.number}. {ref.label}{chunk}{where}")
            parts.append("")
        if self.metadata.offline:
            parts += [f"*Written by the {OFFLINE_MODEL}.*", ""]
        return "\n".join(parts)


def _reference(number: int, citation: Citation) -> Reference:
    if isinstance(citation, ChunkCitation):
        return Reference(number=number, kind="chunk", label=citation.label, url=citation.source_uri,
                         chunk_id=citation.chunk_id)
    return Reference(number=number, kind="fact", label=citation.label, url=citation.url, field=citation.field)


class ProposalRecord(BaseModel):
    """A row of `proposals` (or one of its versions, with `version` set to it)."""

    id: str
    client_id: str
    client_name: str | None = None
    status: str
    version: int
    title: str | None
    content: ProposalContent | None  # None while the first version is being generated
    doc_link: str | None = None
    flow_run_id: str | None = None
    template: str | None = None
    brief: str | None = None
    diff_summary: str | None = None  # for a version made by a revision
    created_at: datetime
    updated_at: datetime
    versions: list[int] = Field(default_factory=list)  # every saved version number
