"""The offline composer: deterministic proposals from templates, client facts and retrieved passages.

No language model is involved, and the proposal says so (metadata.model = OFFLINE_MODEL). Each
section is a lead sentence about the client (citing its enrichment facts) followed by the key
sentences of the best passages the knowledge base returned for the section's query, each citing
its chunk. The same inputs always give the same proposal.

Revisions offline are mechanical: "shorter" trims the concerned sections, "remove …" drops a
section, anything else adds the best new passage on the instruction's topic to the concerned sections.
"""

from __future__ import annotations

import re

from .checks import PLACEHOLDER
from .facts import ClientFacts
from .schema import OFFLINE_MODEL
from .templates import PlannedSection, Template, fill_query
from .writers import NO_USAGE, chunk_citation, fact_citation, make_draft

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"“(*])")
_SHORTEN = re.compile(r"\b(short|shorter|shorten|concise|brief|briefer|trim|cut|condense|tighten|less)\b", re.I)
_REMOVE = re.compile(r"\b(remove|drop|delete|omit|without)\b", re.I)
_EVERYTHING = re.compile(r"\b(all|whole|everything|entire|overall|every section|throughout)\b", re.I)
_SYNONYMS = {
    "pricing": ("price", "prices", "pricing", "cost", "costs", "budget", "fee", "fees", "rate", "rates",
                "investment", "timeline", "schedule", "quote"),
    "evidence": ("case", "cases", "study", "studies", "experience", "results", "references", "proof"),
    "approach": ("approach", "method", "methodology", "process", "plan", "phases", "how"),
    "services": ("services", "scope", "deliverables", "deliverable", "included"),
    "understanding": ("understanding", "needs", "context", "situation", "challenges", "background"),
    "next_steps": ("next", "steps", "kick-off", "kickoff", "onboarding", "start"),
    "requirements": ("requirements", "rfp", "requirement"),
}
_STOP = set("a an the of to in on for and or with about more less please make it this that our your be is are "
            "add expand section sections mention emphasise emphasize stress also into".split())
PASSAGES_PER_SECTION = 3


class OfflineComposer:
    offline = True

    @property
    def model_name(self) -> str:
        return OFFLINE_MODEL

    # --- plan -------------------------------------------------------------------------------------
    def plan(self, client: ClientFacts, brief: str | None, template: Template, has_pricing: bool):
        sections = []
        for spec in template.sections:
            if spec.kind == "pricing" and not has_pricing:
                continue
            query = fill_query(spec.query, name=client.name, industry=client.text("industry"),
                               services=client.items("services"), brief=brief)
            sections.append(PlannedSection.from_spec(spec, query))
        return sections, dict(NO_USAGE)

    # --- draft ------------------------------------------------------------------------------------
    def draft(self, client, brief, section, passages, *, reason=None, previous=None, instruction=None, history=None):
        usable = _usable(passages, strict=bool(reason))
        if instruction and previous:
            return self._revise_section(section, previous, usable, instruction), dict(NO_USAGE)
        paragraphs = []
        lead, lead_citations = self._lead(client, brief, section)
        per_section = PASSAGES_PER_SECTION + (1 if section.kind == "pricing" else 0)
        chosen = usable[:per_section]
        if section.id in ("understanding", "requirements") and lead_citations:
            paragraphs.append({"text": lead, "citations": lead_citations})
            lead = "What we have seen with clients in a similar position:" if chosen else ""
            chosen = chosen[:2]
        for i, passage in enumerate(chosen):
            sentences = key_sentences(passage["text"], 520 if section.kind == "pricing" else 420,
                                      4 if section.kind == "pricing" else 3)
            title = passage.get("title")
            text = f"**{title}.** {sentences}" if title else sentences
            if i == 0 and lead:
                text = f"{lead} {text}"
            paragraphs.append({"text": text, "citations": [chunk_citation(passage)]})
        if lead and not chosen:
            paragraphs.append({"text": lead, "citations": lead_citations})
        if section.id == "next_steps":
            paragraphs.insert(0, {"text": self._next_steps(client), "citations": []})
        draft = make_draft(section, paragraphs)
        if reason and "too long" in reason:
            under = re.search(r"under (\d+) characters", reason)  # the whole proposal is too long
            draft = _trim(draft, min(section.max_chars, int(under.group(1))) if under else section.max_chars)
        return draft, dict(NO_USAGE)

    def _lead(self, client: ClientFacts, brief: str | None, section: PlannedSection) -> tuple[str, list[dict]]:
        name = client.name
        if section.id in ("understanding", "requirements"):
            sentences, citations = [], []
            summary = client.text("summary")
            if summary and client.citation("summary"):
                sentences.append(summary if summary.lower().startswith(name.lower()) else f"{name}: {summary.rstrip('.')}.")
                citations.append(fact_citation(client, "summary"))
            details = []
            for field, phrase in (("industry", "in {}"), ("target_customers", "serving {}"),
                                  ("locations", "from {}"), ("company_size", "with a team of {}")):
                value = client.text(field) if field in ("locations",) else _lower(client.items(field))
                if value and client.citation(field):
                    details.append(phrase.format(value))
                    citations.append(fact_citation(client, field))
            if details:
                sentences.append("You work " + ", ".join(details) + ".")
            services = _lower(client.items("services"))
            if services and client.citation("services"):
                sentences.append(f"Your offer today includes {services}.")
                citations.append(fact_citation(client, "services"))
            topic = brief_topic(brief)
            if topic:
                sentences.append(f"You asked us for a proposal on this: “{topic}”.")
            if not sentences:
                sentences.append(f"{name} asked us for a proposal.")
            return " ".join(sentences), citations
        industry = _lower(client.items("industry"))
        if section.kind == "pricing":
            return f"Our pricing for {name} follows our current pricing notes.", []
        leads = {
            "approach": f"Here is how we would work with {name}:",
            "services": f"The scope we propose for {name}:",
            "evidence": f"Results from comparable engagements{' in ' + industry if industry else ''}:",
        }
        return leads.get(section.id, ""), []

    @staticmethod
    def _next_steps(client: ClientFacts) -> str:
        return (f"If this proposal fits {possessive(client.name)} plans, we suggest a short kick-off call to confirm scope, "
                "priorities and timing. We then send a statement of work for signature and agree a start date "
                "together.")

    def _revise_section(self, section, previous: dict, passages: list[dict], instruction: str) -> dict:
        paragraphs = [dict(p) for p in previous.get("paragraphs", [])]
        if _SHORTEN.search(instruction):
            kept = []
            for p in paragraphs[:2]:
                kept.append({**p, "text": first_sentences(p["text"], 2)})
            return make_draft(section, kept)
        cited = {c.get("chunk_id") for p in paragraphs for c in p.get("citations", []) if c["kind"] == "chunk"}
        fresh = [p for p in passages if int(p["chunk_id"]) not in cited]
        if fresh:
            passage = fresh[0]
            title = passage.get("title")
            sentences = key_sentences(passage["text"], 420, 3)
            paragraphs.append({"text": f"**{title}.** {sentences}" if title else sentences,
                               "citations": [chunk_citation(passage)]})
        return make_draft(section, paragraphs)

    # --- summary ----------------------------------------------------------------------------------
    def summarize(self, client, brief, drafts, *, reason=None, previous=None):  # deterministic: `reason` changes nothing
        topic = brief_topic(brief, 70)
        title = f"Proposal for {client.name}" + (f": {topic[:1].upper() + topic[1:]}" if topic else "")
        industry = _lower(client.items("industry")) if client.citation("industry") else ""
        headings = [d["heading"] for d in drafts]
        chunks = {c["chunk_id"] for d in drafts for p in d["paragraphs"] for c in p["citations"] if c["kind"] == "chunk"}
        facts = {c["field"] for d in drafts for p in d["paragraphs"] for c in p["citations"] if c["kind"] == "fact"}
        opening = f"This proposal sets out how we would help {client.name}"
        if industry:
            opening += f", a company in {industry}" + ("," if topic else "")
        if topic:
            opening += f" with this request: “{topic}”"
        parts = [opening + "."]
        if headings:
            parts.append("It covers " + _join([h.lower() if h[0].isupper() and not h.isupper() else h
                                               for h in headings]) + ".")
        source = f"{len(chunks)} passage{'s' if len(chunks) != 1 else ''} of our knowledge base"
        if facts:
            source += f" and {len(facts)} fact{'s' if len(facts) != 1 else ''} from {possessive(client.name)} website"
        parts.append(f"Every specific claim cites its source: {source}.")
        if any(d.get("kind") == "pricing" for d in drafts):
            parts.append("Prices follow our current pricing notes.")
        return title, " ".join(parts), dict(NO_USAGE)

    # --- revision ---------------------------------------------------------------------------------
    def route_revision(self, content, instruction, history):
        words = {w for w in re.findall(r"[a-z][a-z-]+", instruction.lower()) if w not in _STOP}
        matched = []
        for section in content.sections:
            names = set(re.findall(r"[a-z][a-z-]+", f"{section.id.replace('_', ' ')} {section.heading}".lower()))
            names |= set(_SYNONYMS.get(section.id, ())) | (set(_SYNONYMS["pricing"]) if section.kind == "pricing" else set())
            if words & (names - _STOP):
                matched.append(section.id)
        if not matched:
            body_hits = [s.id for s in content.sections if any(w in s.body.lower() for w in words if len(w) > 4)]
            matched = body_hits[:2]
        if _EVERYTHING.search(instruction) or not matched:
            matched = [s.id for s in content.sections]
        headings = {s.id: s.heading for s in content.sections}
        if _REMOVE.search(instruction) and not _EVERYTHING.search(instruction) and len(matched) < len(content.sections):
            reply = f"Removing {_join([repr(headings[i]) for i in matched])}."
            return {"rewrite": [], "remove": matched, "add": [], "rewrite_summary": True,
                    "reply": f"{OFFLINE_MODEL}: {reply}"}, dict(NO_USAGE)
        verb = "Shortening" if _SHORTEN.search(instruction) else "Adding a passage on that to"
        return {"rewrite": matched, "remove": [], "add": [], "rewrite_summary": True,
                "reply": f"{OFFLINE_MODEL}: {verb} {_join([repr(headings[i]) for i in matched])}."}, dict(NO_USAGE)


# --- text helpers ---------------------------------------------------------------------------------
def _usable(passages: list[dict], strict: bool) -> list[dict]:
    """One passage per document, best first; on a redraft, none with placeholder-like text."""
    seen, out = set(), []
    for p in passages:
        key = p.get("document_id") or p["chunk_id"]
        if key in seen or (strict and PLACEHOLDER.search(key_sentences(p["text"], 520, 4))):
            continue
        seen.add(key)
        out.append(p)
    return out


def passage_body(text: str) -> str:
    """A chunk's text without the heading path the knowledge base puts first ("Title › Section")."""
    head, sep, rest = text.strip().partition("\n\n")
    if sep and rest.strip() and len(head) < 240 and ("›" in head or not head.rstrip().endswith((".", "!", "?"))):
        return rest
    return text


def key_sentences(text: str, limit_chars: int = 420, max_sentences: int = 3) -> str:
    """The first informative sentences of a passage (no headings, no front matter), within a length."""
    text = passage_body(text)
    blocks: list[str] = []  # paragraphs, list items and table rows, each ending a sentence
    current: list[str] = []
    in_table = False

    def close() -> None:
        if current:
            block = " ".join(current)
            blocks.append(block if block.endswith((".", "!", "?", ":", ";")) else block + ".")
            current.clear()

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|"):  # a Markdown table: rows become "cell: cell." (the header row is dropped)
            close()
            cells = [c.strip() for c in line.strip("|").split("|")]
            if in_table and not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                blocks.append(": ".join(c for c in cells if c) + ".")
            in_table = True
            continue
        in_table = False
        if not line or line.startswith(("#", "---", "```")) or re.match(r"^\w[\w ]{0,30}:\s*$", line):
            close()
            continue
        if re.match(r"^([-*•]|\d+[.)])\s+", line):
            close()
            line = re.sub(r"^([-*•]|\d+[.)])\s+", "", line)
        current.append(line)
    close()
    lines = blocks
    flat = " ".join(" ".join(lines).split())
    out, total = [], 0
    for sentence in _SENTENCE_END.split(flat):
        sentence = sentence.strip()
        if len(sentence) < 20:
            continue
        if out and total + len(sentence) > limit_chars:
            break
        out.append(sentence)
        total += len(sentence) + 1
        if len(out) >= max_sentences:
            break
    if not out:
        return (flat[:limit_chars].rsplit(" ", 1)[0] + "…") if len(flat) > limit_chars else flat
    result = " ".join(out)
    if len(result) > limit_chars + 200:
        result = result[:limit_chars].rsplit(" ", 1)[0] + "…"
    return result


def first_sentences(text: str, n: int) -> str:
    parts = _SENTENCE_END.split(text.strip())
    return " ".join(parts[:n]).strip()


def brief_topic(brief: str | None, limit: int = 120) -> str:
    """The first sentence of the brief, shortened: what the client asked for, in its words."""
    if not brief or not brief.strip():
        return ""
    first = _SENTENCE_END.split(" ".join(brief.split()))[0].rstrip(".!?")
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] + "…"
    return first


def possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def _lower(items: list[str]) -> str:
    """List items as prose, lower-cased unless they look like names or acronyms ("SaaS", "B2B")."""
    words = [i if (len(i) > 1 and (i[1].isupper() or i[1].isdigit())) else i[:1].lower() + i[1:] for i in items]
    if len(words) > 1:
        return ", ".join(words[:-1]) + " and " + words[-1]
    return words[0] if words else ""


def _trim(draft: dict, max_chars: int) -> dict:
    out, total = [], 0
    for p in draft["paragraphs"]:
        if out and total + len(p["text"]) > max_chars:
            break
        out.append(p)
        total += len(p["text"]) + 2
    return {**draft, "paragraphs": out}


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""
