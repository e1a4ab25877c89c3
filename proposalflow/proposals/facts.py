"""What a proposal may say about the client: its row, and its enrichment facts with their sources.

`clients.enriched_data` is written by enrichment (proposalflow/enrichment/schema.py): fields such as
summary, industry, services, target_customers, locations, company_size, founded, and
`sources: {field: [{url, fetched_at}]}`. A fact is citable when its field has a source; a client
that was never enriched (NULL) still gets a proposal, with fewer client specifics.
Read tolerantly (a plain dict), so a newer enrichment schema version does not break generation.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from ..errors import NotFound, ValidationFailed
from .schema import FactCitation

# fields a proposal may use, in the order a reader cares about (contact details — emails, phones,
# social profiles — and provenance stay out of proposals)
FACT_FIELDS = ("summary", "industry", "services", "target_customers", "locations", "company_size", "founded",
               "notable_customers", "technologies")
_LABELS = {"target_customers": "customers", "company_size": "size", "founded": "founded in"}


@dataclass
class ClientFacts:
    id: str
    name: str
    website: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # field -> str | list[str]
    sources: dict[str, list[dict]] = field(default_factory=dict)  # field -> [{url, fetched_at}]

    @property
    def enriched(self) -> bool:
        return bool(self.facts)

    def text(self, name: str) -> str:
        """A fact as prose: lists joined with commas; '' when unknown."""
        value = self.facts.get(name)
        if isinstance(value, (list, tuple)):
            items = [str(v).strip() for v in value if str(v).strip()]
            if len(items) > 1:
                return ", ".join(items[:-1]) + " and " + items[-1]
            return items[0] if items else ""
        return str(value).strip() if value is not None else ""

    def items(self, name: str) -> list[str]:
        value = self.facts.get(name)
        if isinstance(value, (list, tuple)):
            return [str(v).strip() for v in value if str(v).strip()]
        return [str(value).strip()] if value not in (None, "") else []

    def citation(self, name: str) -> FactCitation | None:
        """The first source of a fact, or None when the fact has no source (then it cannot be cited)."""
        for source in self.sources.get(name) or []:
            if source.get("url"):
                return FactCitation(field=name, url=source["url"], fetched_at=source.get("fetched_at"))
        return None

    def resolves(self, name: str, url: str | None = None) -> bool:
        """Is (field, url) a stored fact source? With url None: has the field any source."""
        urls = [s.get("url") for s in self.sources.get(name) or []]
        return bool(urls) if url is None else url in urls

    def citable_fields(self) -> list[str]:
        return [f for f in self.facts if self.citation(f) is not None]

    def for_prompt(self) -> str:
        """Facts as lines for a model: `[fact industry] Retail (source: https://…)`."""
        lines = []
        for name in self.facts:
            citation = self.citation(name)
            source = f" (source: {citation.url})" if citation else " (no source: do not cite)"
            lines.append(f"[fact {name}] {self.text(name)}{source}")
        return "\n".join(lines) or "(no enrichment: this client's website has not been read yet)"

    def label(self, name: str) -> str:
        return _LABELS.get(name, name.replace("_", " "))

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ClientFacts":
        return cls(**data)


def facts_from_enrichment(enriched: dict | None) -> tuple[dict[str, Any], dict[str, list[dict]]]:
    """(facts, sources) from `clients.enriched_data`, ignoring what a proposal cannot use."""
    if not enriched:
        return {}, {}
    facts: dict[str, Any] = {}
    for name in FACT_FIELDS:
        value = enriched.get(name)
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        if isinstance(value, (list, tuple)):
            value = [str(v) for v in value if v not in (None, "") and not isinstance(v, (dict, list))]
        elif isinstance(value, (dict, bool)) or value in (None, ""):
            continue
        else:
            value = str(value)
        if value:
            facts[name] = value
    sources: dict[str, list[dict]] = {}
    for name, entries in (enriched.get("sources") or {}).items():
        if name not in facts:
            continue
        if isinstance(entries, dict):
            entries = [entries]
        clean = []
        for entry in entries or []:
            if isinstance(entry, str):
                entry = {"url": entry}
            if isinstance(entry, dict) and entry.get("url"):
                fetched = entry.get("fetched_at")
                clean.append({"url": str(entry["url"]), "fetched_at": str(fetched) if fetched else None})
        if clean:
            sources[name] = clean
    return facts, sources


def load_client(conn: psycopg.Connection, client_id: str) -> ClientFacts:
    row = conn.execute("SELECT id, name, website, enriched_data FROM clients WHERE id = %s",
                       (_as_uuid(client_id, "client"),)).fetchone()
    if row is None:
        raise NotFound(f"client {client_id} does not exist")
    facts, sources = facts_from_enrichment(row[3])
    return ClientFacts(str(row[0]), row[1], row[2], facts, sources)


def find_client(conn: psycopg.Connection, id_or_name: str) -> tuple[str, str]:
    """(id, name) of the client named by an id, an exact name, a website domain, or a unique part of a name."""
    key = id_or_name.strip()
    if not key:
        raise ValidationFailed("name a client by its id or name", [{"field": "client", "message": "empty"}])
    try:
        row = conn.execute("SELECT id, name FROM clients WHERE id = %s", (str(uuid.UUID(key)),)).fetchone()
        if row is None:
            raise NotFound(f"client {key} does not exist")
        return str(row[0]), row[1]
    except ValueError:
        pass
    domain = key.lower().removeprefix("https://").removeprefix("http://").removeprefix("www.").rstrip("/")
    for sql, arg in (("lower(name) = lower(%s)", key), ("domain = %s", domain),
                     ("name ILIKE '%%' || %s || '%%'", key.replace("%", r"\%").replace("_", r"\_"))):
        rows = conn.execute(f"SELECT id, name FROM clients WHERE {sql} ORDER BY name LIMIT 6", (arg,)).fetchall()
        if len(rows) == 1:
            return str(rows[0][0]), rows[0][1]
        if len(rows) > 1:
            names = "; ".join(f"{name} ({id_})" for id_, name in rows[:5])
            raise ValidationFailed(f"{key!r} matches several clients: {names}{' …' if len(rows) > 5 else ''}; "
                                   "use the client's id", [{"field": "client", "message": "ambiguous"}])
    raise NotFound(f"no client matches {key!r} (by id, name or website domain)")


def _as_uuid(value: str, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"{what} {value!r} does not exist (not a {what} id)") from None
