"""Proposal templates: which sections a proposal has, what each is for, and how it searches the knowledge base.

A template is a list of `SectionSpec`. The planner (a model, or the offline composer) turns it into
an outline for one client and brief; every template section is in the outline, the `pricing`
section only when the knowledge base holds pricing notes (category `pricing`). A `required`
section still missing after its redraft fails the run, and a revision may not remove it;
`max_total_chars` bounds the whole proposal's sections (checked, see checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ValidationFailed

PRICING_CATEGORY = "pricing"


@dataclass(frozen=True)
class SectionSpec:
    id: str
    heading: str
    purpose: str  # what the section must do, for the model and for the reader of the template
    query: str  # knowledge-base query; {industry}, {services}, {brief} are filled from the client and brief
    kind: str = "standard"  # "pricing": only when the knowledge base has pricing notes
    category: str | None = None  # restrict retrieval to one knowledge category
    required: bool = True  # missing after its redraft: the run fails; a revision may not remove it
    grounded: bool = True  # must cite at least one chunk or fact
    min_chars: int = 120
    max_chars: int = 4000
    # knowledge categories this section prefers, best first (matched as substrings: "case" → "case-studies");
    # a soft preference: retrieval is not filtered, preferred passages are moved up
    prefer: tuple[str, ...] = ()


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    sections: tuple[SectionSpec, ...]
    max_extra_sections: int = 2  # sections a model may add for a brief (never offline)
    max_total_chars: int = 24000  # all sections' text together (the check redrafts the longest sections)

    def spec(self, section_id: str) -> SectionSpec | None:
        return next((s for s in self.sections if s.id == section_id), None)


_UNDERSTANDING = SectionSpec(
    "understanding", "Our understanding of your needs",
    "Show the client we understand their business, customers and the problem in the brief; use facts "
    "about the client and cite them.",
    "{industry} {brief} challenges goals for companies like {name}", prefer=("case", "past"))
_APPROACH = SectionSpec(
    "approach", "Proposed approach",
    "Explain how we would solve it, phase by phase, using our services and methods from the knowledge base.",
    "approach method process delivery {services} {brief}", prefer=("past", "service"))
_SERVICES = SectionSpec(
    "services", "Services and scope",
    "List the services we propose, what each includes and what is out of scope, from our service descriptions.",
    "services scope deliverables {industry} {brief}", prefer=("service",))
_EVIDENCE = SectionSpec(
    "evidence", "Relevant experience",
    "Show results we achieved for similar clients (case studies, past proposals), with their numbers.",
    "case study results client outcome {industry} {brief}", prefer=("case", "past"))
_PRICING = SectionSpec(
    "pricing", "Investment and timeline",
    "Give the pricing model, the price ranges and the timeline, only from our pricing notes; never invent prices.",
    "pricing rates fees packages timeline {brief}", kind="pricing", category=PRICING_CATEGORY)
_NEXT = SectionSpec(
    "next_steps", "Next steps",
    "Say what happens after the client agrees: kick-off, who they will meet, what we need from them.",
    "onboarding kick-off next steps engagement process team", grounded=False, min_chars=60, max_chars=1500,
    prefer=("team", "about"))

TEMPLATES: dict[str, Template] = {
    "standard": Template("standard", "A full proposal: understanding, approach, scope, experience, "
                                     "investment and timeline, next steps.",
                         (_UNDERSTANDING, _APPROACH, _SERVICES, _EVIDENCE, _PRICING, _NEXT)),
    "short": Template("short", "A one-pager: understanding, approach, investment, next steps.",
                      (_UNDERSTANDING, _APPROACH, _PRICING, _NEXT), max_extra_sections=0, max_total_chars=9000),
    "rfp": Template("rfp", "A reply to a request for proposal: requirements first, then how we meet them.",
                    (SectionSpec("requirements", "Requirements as we understand them",
                                 "Restate the RFP's requirements (from the brief) and the client context; "
                                 "cite facts about the client.", "{brief} requirements {industry}",
                                 prefer=("past", "case")),
                     _APPROACH, _SERVICES, _EVIDENCE, _PRICING, _NEXT), max_extra_sections=1),
}
DEFAULT_TEMPLATE = "standard"


def get_template(name: str | None) -> Template:
    key = (name or DEFAULT_TEMPLATE).strip().lower()
    if key not in TEMPLATES:
        raise ValidationFailed(f"unknown proposal template {name!r}; available: {', '.join(sorted(TEMPLATES))}",
                               [{"field": "template", "message": "unknown template"}])
    return TEMPLATES[key]


@dataclass
class PlannedSection:
    """One section of an outline: a template section (or one a model added) made specific to a client."""

    id: str
    heading: str
    purpose: str
    query: str
    kind: str = "standard"
    category: str | None = None
    grounded: bool = True
    min_chars: int = 120
    max_chars: int = 4000
    focus: str = ""  # what the planner wants this section to say for this client
    prefer: tuple[str, ...] = ()
    required: bool = False  # a template's required section: the proposal fails without it (sections added for
    # a brief or by a revision are not required)

    def as_dict(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict) -> "PlannedSection":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["prefer"] = tuple(known.get("prefer") or ())
        return cls(**known)

    @classmethod
    def from_spec(cls, spec: SectionSpec, query: str, focus: str = "") -> "PlannedSection":
        return cls(spec.id, spec.heading, spec.purpose, query, spec.kind, spec.category, spec.grounded,
                   spec.min_chars, spec.max_chars, focus, spec.prefer, spec.required)

    def rank(self, passages: list[dict]) -> list[dict]:
        """Passages in the section's preferred order: preferred categories first (in `prefer` order),
        then the rest, and pricing notes last outside the pricing section; search order within each."""
        def key(item: tuple[int, dict]) -> tuple[int, int]:
            index, passage = item
            category = (passage.get("category") or "").lower()
            for rank, wanted in enumerate(self.prefer):
                if wanted in category:
                    return rank, index
            if self.kind != "pricing" and category == PRICING_CATEGORY:
                return len(self.prefer) + 1, index
            return len(self.prefer), index
        return [p for _, p in sorted(enumerate(passages), key=key)]


def fill_query(spec_query: str, *, name: str, industry: str | None, services: list[str], brief: str | None) -> str:
    brief_words = " ".join((brief or "").split()[:30])
    text = spec_query.format(name=name, industry=industry or "", services=" ".join(services[:5]), brief=brief_words)
    return " ".join(text.split())

