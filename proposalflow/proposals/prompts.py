"""The prompts of the proposal graph. Changing any text here means bumping schema.PROMPT_VERSION.

Each prompt has a structured answer (pydantic, sent as a JSON schema): `Outline`, `SectionDraft`,
`Summary`, `RevisionPlan`. The words the model sees name passages `[chunk 12]` and client facts
`[fact industry]`; the answers cite them by `chunk_ids` and `fact_fields`, so citations are data,
never parsed out of prose.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

SYSTEM = """You write sales proposals for a services agency ("we") to a client company ("you").
Rules:
- Ground every specific claim in the passages from our knowledge base or the facts about the client
  that you are given, and cite them: for each paragraph list the chunk ids and fact fields it relies on.
- Never invent numbers, prices, dates, client names, case studies or capabilities. If a passage does
  not say it, do not say it.
- No placeholder text: no brackets to fill in, no TODO, no TBD, no template variables.
- Write for a busy decision maker: concrete, specific to this client, no filler. Markdown is allowed
  (lists, bold) but no headings: the heading is added for you."""


class PlannedSectionOut(BaseModel):
    id: str = Field(description="the template section id, or a new short snake_case id for an added section")
    heading: str = Field(description="the heading, specific to this client")
    query: str = Field(description="a search query for our knowledge base that finds what this section needs")
    focus: str = Field(description="one or two sentences: what this section must say for this client")


class Outline(BaseModel):
    sections: list[PlannedSectionOut]


class DraftParagraph(BaseModel):
    text: str = Field(description="the paragraph, Markdown, without citation markers")
    chunk_ids: list[int] = Field(description="ids of the knowledge passages this paragraph relies on")
    fact_fields: list[str] = Field(description="fields of the client facts this paragraph relies on")


class SectionDraft(BaseModel):
    paragraphs: list[DraftParagraph]


class Summary(BaseModel):
    title: str = Field(description="the proposal's title, naming the client and what we propose")
    executive_summary: str = Field(description="3 to 6 sentences: the client's need, our answer, the outcome")


class AddedSection(BaseModel):
    heading: str
    focus: str = Field(description="what the new section must say")


class RevisionPlan(BaseModel):
    rewrite_section_ids: list[str] = Field(description="ids of the sections the instruction concerns")
    remove_section_ids: list[str] = Field(description="ids of sections the instruction asks to remove")
    add_sections: list[AddedSection] = Field(description="sections the instruction asks to add")
    rewrite_summary: bool = Field(description="whether the title and executive summary must change too")
    reply: str = Field(description="one or two sentences to the user: what you will change")


def client_block(client) -> str:
    site = f" — {client.website}" if client.website else ""
    return f"Client: {client.name}{site}\nFacts about the client:\n{client.for_prompt()}"


def brief_block(brief: str | None) -> str:
    return f"Brief from the salesperson / RFP excerpt:\n{brief.strip()}" if brief and brief.strip() else \
        "No brief was given: propose what fits the client best."


def passages_block(passages: list[dict]) -> str:
    if not passages:
        return "Passages from our knowledge base: (none found — write only what the client facts support)"
    lines = ["Passages from our knowledge base:"]
    for p in passages:
        title = p.get("title") or p.get("source_uri") or "untitled"
        lines.append(f"[chunk {p['chunk_id']}] {title} ({p.get('category') or 'general'}):\n{p['text'].strip()}")
    return "\n\n".join(lines)


def plan_messages(client, brief, template, specs, has_pricing: bool) -> list[tuple[str, str]]:
    listed = "\n".join(f"- id {s.id}: {s.heading} — {s.purpose}" for s in specs)
    pricing = ("Our knowledge base has pricing notes: keep the pricing section." if has_pricing else
               "Our knowledge base has no pricing notes: there is no pricing section.")
    extra = (f"You may add up to {template.max_extra_sections} sections the brief calls for."
             if template.max_extra_sections else "Do not add sections.")
    return [("system", SYSTEM), ("human", f"""Plan a proposal (template '{template.name}').

{client_block(client)}

{brief_block(brief)}

Sections of the template, in order (keep every one, with its id):
{listed}
{pricing} {extra}

For each section give a heading specific to this client, a knowledge-base search query and its focus.""")]


def draft_messages(client, brief, section, passages, *, reason=None, previous=None, instruction=None,
                   history=None) -> list[tuple[str, str]]:
    parts = [f"""Write the section "{section.heading}" (id {section.id}) of our proposal.
Purpose: {section.purpose}
Focus for this client: {section.focus or '(as the purpose says)'}
Length: {section.min_chars} to {section.max_chars} characters in all.

{client_block(client)}

{brief_block(brief)}

{passages_block(passages)}"""]
    if instruction:
        conversation = "\n".join(f"{m['role']}: {m['content']}" for m in (history or [])[-10:])
        parts.append(f"""The current text of this section:
{_paragraphs(previous)}

Conversation about this proposal so far:
{conversation or '(none)'}

The user now asks: {instruction}
Rewrite the section to do what the user asks (as far as it concerns this section); keep what the
instruction does not touch, and keep citing.""")
    if reason:
        parts.append(f"""Your previous draft of this section failed our check: {reason}
Previous draft:
{_paragraphs(previous)}
Write it again and fix exactly that.""")
    parts.append("Answer with the paragraphs; for each, the chunk ids and fact fields it relies on.")
    return [("system", SYSTEM), ("human", "\n\n".join(parts))]


def summary_messages(client, brief, sections: list[tuple[str, str]], *, reason: str | None = None,
                     previous: dict | None = None) -> list[tuple[str, str]]:
    body = "\n\n".join(f"## {heading}\n{text}" for heading, text in sections)
    again = ""
    if reason:
        previous = previous or {}
        again = f"""

Your previous title and executive summary failed our check: {reason}
Previous title: {previous.get('title')}
Previous executive summary: {previous.get('executive_summary')}
Write them again and fix exactly that."""
    return [("system", SYSTEM), ("human", f"""Write the title and the executive summary of this proposal.

{client_block(client)}

{brief_block(brief)}

The sections:
{body}

The executive summary only restates what the sections say.{again}""")]


def revision_messages(content, instruction: str, history: list[dict]) -> list[tuple[str, str]]:
    sections = "\n".join(f"- id {s.id}: {s.heading} — {s.body[:300].replace(chr(10), ' ')}…" for s in content.sections)
    conversation = "\n".join(f"{m['role']}: {m['content']}" for m in history[-10:])
    return [("system", SYSTEM), ("human", f"""A user is revising our proposal "{content.title}" for {content.client.name}.

Sections:
{sections}

Executive summary: {content.executive_summary}

Conversation so far:
{conversation or '(none)'}

The user now asks: {instruction}

Which sections does this concern? Rewrite only those; remove or add sections only if asked.""")]


def _paragraphs(draft: dict | None) -> str:
    if not draft:
        return "(none)"
    out = []
    for p in draft.get("paragraphs", []):
        cites = [f"chunk {c['chunk_id']}" if c["kind"] == "chunk" else f"fact {c['field']}" for c in p.get("citations", [])]
        out.append(p["text"] + (f"  (cites: {', '.join(cites)})" if cites else ""))
    return "\n\n".join(out) or "(empty)"
