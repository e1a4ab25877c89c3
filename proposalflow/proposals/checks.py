"""The check a drafted section must pass before a proposal is saved.

- every citation resolves: a chunk id stored in `knowledge_chunks`, a fact (field, url) stored in the
  client's enrichment sources;
- a grounded section cites something;
- no placeholder text ("[Client name]", "TODO", "{{price}}", "lorem ipsum", …);
- length within the section's bounds.

A section that fails is drafted once more with these reasons; what still fails after that is
kept in the proposal's metadata as `check_warnings` for the reviewer — except a *required* section
that is still missing or empty: the run fails (`IncompleteProposal`), nothing is saved.

The whole proposal: its sections' text together within the template's `max_total_chars` (the
longest sections are redrafted shorter). After assembly, the title and the executive summary are
checked the same way (placeholder text, length) and written once more with the reasons.
"""

from __future__ import annotations

import re

from ..errors import ValidationFailed
from .facts import ClientFacts
from .templates import PlannedSection

TITLE_CHARS = (5, 160)
SUMMARY_CHARS = (40, 2500)


class IncompleteProposal(ValidationFailed):
    """A required section is still missing after its redraft: the proposal is not saved."""

PLACEHOLDER = re.compile(
    r"\[\s*(?:insert|your|client|company|customer|todo|tbd|name|date|amount|price|number|x{2,})\b[^\]]*\]"
    r"|\{\{[^}]*\}\}|<\s*(?:insert|client|company|your)[^>]*>|\bTODO\b|\bTBD\b|\bFIXME\b|lorem ipsum"
    r"|\bX{3,}\b|\$\s?X+\b|\bN/A\b|as an ai\b",
    re.IGNORECASE,
)


def section_problems(plan: PlannedSection, draft: dict | None, *, stored_chunks: set[int],
                     facts: ClientFacts) -> list[str]:
    """What is wrong with one drafted section (empty list: it passes)."""
    if not draft or not draft.get("paragraphs"):
        return ["the section is missing or empty"]
    problems: list[str] = []
    text = "\n\n".join(p["text"] for p in draft["paragraphs"])
    if len(text) < plan.min_chars:
        problems.append(f"too short: {len(text)} characters, at least {plan.min_chars}")
    if len(text) > plan.max_chars:
        problems.append(f"too long: {len(text)} characters, at most {plan.max_chars}")
    found = sorted({m.group(0) for m in PLACEHOLDER.finditer(text)})
    if found:
        problems.append("placeholder text: " + ", ".join(repr(f) for f in found[:5]))
    cited = 0
    for paragraph in draft["paragraphs"]:
        for citation in paragraph.get("citations", []):
            cited += 1
            if citation["kind"] == "chunk":
                if citation["chunk_id"] not in stored_chunks:
                    problems.append(f"cites knowledge chunk {citation['chunk_id']}, which does not exist "
                                    "(cite only the chunk ids of the passages given)")
            elif not facts.resolves(citation["field"], citation.get("url")):
                problems.append(f"cites the client fact '{citation['field']}' from {citation.get('url')}, "
                                "which is not a stored source (cite only the facts given, with their source)")
    if plan.grounded and cited == 0:
        problems.append("cites nothing: each claim must cite the passages or client facts it relies on")
    return problems


def cited_chunk_ids(drafts: dict[str, dict]) -> set[int]:
    return {c["chunk_id"] for d in drafts.values() for p in d.get("paragraphs", [])
            for c in p.get("citations", []) if c["kind"] == "chunk"}


def drop_unresolved(draft: dict, *, stored_chunks: set[int], facts: ClientFacts) -> dict:
    """The draft without citations that do not resolve (used after the one redraft, before saving)."""
    paragraphs = []
    for p in draft.get("paragraphs", []):
        keep = [c for c in p.get("citations", [])
                if (c["kind"] == "chunk" and c["chunk_id"] in stored_chunks)
                or (c["kind"] == "fact" and facts.resolves(c["field"], c.get("url")))]
        paragraphs.append({**p, "citations": keep})
    return {**draft, "paragraphs": paragraphs}


def missing_required(outline: list[dict], drafts: dict[str, dict]) -> list[dict]:
    """The outline's required sections that have no paragraphs."""
    return [s for s in outline if s.get("required") and not (drafts.get(s["id"]) or {}).get("paragraphs")]


def total_chars(outline: list[dict], drafts: dict[str, dict]) -> int:
    return sum(len("\n\n".join(p["text"] for p in (drafts.get(s["id"]) or {}).get("paragraphs", [])))
               for s in outline)


def too_long(outline: list[dict], drafts: dict[str, dict], max_total: int,
             redraftable: set[str]) -> tuple[str | None, dict[str, str]]:
    """When the sections together exceed `max_total` characters: the problem, and for the longest redraftable
    sections (those above an even share, longest first, until the excess is covered) the reason to shorten them."""
    total = total_chars(outline, drafts)
    if total <= max_total:
        return None, {}
    problem = f"the whole proposal is too long: {total} characters in its sections, at most {max_total}"
    share = max_total // max(1, len(outline))
    lengths = sorted(((len("\n\n".join(p["text"] for p in (drafts.get(s["id"]) or {}).get("paragraphs", []))),
                       s["id"]) for s in outline if s["id"] in redraftable), reverse=True)
    reasons, excess = {}, total - max_total
    for length, sid in lengths:
        if excess <= 0 or length <= share:
            break
        target = max(share, length - excess)
        reasons[sid] = f"{problem}: make this section shorter, under {target} characters"
        excess -= length - target
    return problem, reasons


def document_problems(title: str, summary: str) -> list[str]:
    """What is wrong with the assembled proposal's title and executive summary (empty list: they pass)."""
    problems = []
    for name, text, (low, high) in (("title", title, TITLE_CHARS), ("executive summary", summary, SUMMARY_CHARS)):
        text = (text or "").strip()
        if len(text) < low:
            problems.append(f"{name} too short: {len(text)} characters, at least {low}")
        if len(text) > high:
            problems.append(f"{name} too long: {len(text)} characters, at most {high}")
        found = sorted({m.group(0) for m in PLACEHOLDER.finditer(text)})
        if found:
            problems.append(f"{name}: placeholder text: " + ", ".join(repr(f) for f in found[:5]))
    return problems
