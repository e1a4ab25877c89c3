"""What enrichment learns about a client, as stored in `clients.enriched_data` (JSON).

Every fact carries its sources: `sources[field]` lists the page URL(s) and fetch time(s) it came
from, and the model refuses a non-empty fact without one. Proposals cite facts as
(field, source URL) through `facts()`:

    company = EnrichedCompany.from_stored(row["enriched_data"])
    for fact in company.facts():          # Fact(field="services", value="Demand forecasting",
        ...                               #      urls=("https://fjordline.example/services",))

`schema_version` is bumped on any incompatible change; `from_stored` reads every version still
found in databases (today: 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterator, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

TEXT_FIELDS = ("name", "summary", "industry", "company_size", "founded")
LIST_FIELDS = ("services", "target_customers", "locations", "emails", "phones", "social_profiles",
               "notable_customers", "technologies")
FACT_FIELDS = TEXT_FIELDS + LIST_FIELDS


class FactSource(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    fetched_at: datetime


class PageRead(BaseModel):
    """A page enrichment read: where, when, by which reader, and whether it came from the cache."""

    url: str
    title: str | None = None
    fetched_at: datetime
    reader: str = "direct"


class Fact(NamedTuple):
    field: str
    value: str
    urls: tuple[str, ...]


class EnrichedCompany(BaseModel):
    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION

    # facts (each non-empty one has sources[field])
    name: str | None = Field(None, description="The company's name as its website states it")
    summary: str | None = Field(None, description="What the company does, in one or two sentences")
    industry: str | None = Field(None, description="The industry or sector")
    services: list[str] = Field(default_factory=list, description="Services and products it sells")
    target_customers: list[str] = Field(default_factory=list, description="Who it sells to")
    locations: list[str] = Field(default_factory=list, description="Offices, cities, countries it operates in")
    company_size: str | None = Field(None, description="Employees, e.g. '85 employees' or '50-200 employees'")
    founded: str | None = Field(None, description="Year (or date) founded")
    emails: list[str] = Field(default_factory=list, description="Contact email addresses")
    phones: list[str] = Field(default_factory=list, description="Contact phone numbers")
    social_profiles: list[str] = Field(default_factory=list, description="URLs of its social media profiles")
    notable_customers: list[str] = Field(default_factory=list, description="Named customers or case studies")
    technologies: list[str] = Field(default_factory=list, description="Technologies it uses or offers, when visible")

    sources: dict[str, list[FactSource]] = Field(default_factory=dict)
    # optional, finer: field → value → the URLs that state that value (a subset of sources[field])
    value_sources: dict[str, dict[str, list[str]]] = Field(default_factory=dict)

    # provenance of the whole record
    website: str | None = None
    pages: list[PageRead] = Field(default_factory=list)
    extracted_by: list[str] = Field(default_factory=list)  # "deterministic", "llm:<model>"
    problems: list[str] = Field(default_factory=list)      # pages that failed, LLM answers refused …
    enriched_at: datetime | None = None

    @model_validator(mode="after")
    def _every_fact_has_a_source(self) -> "EnrichedCompany":
        unknown = set(self.sources) - set(FACT_FIELDS)
        unknown |= set(self.value_sources) - set(FACT_FIELDS)
        if unknown:
            raise ValueError(f"sources for unknown fields: {sorted(unknown)}")
        missing = [f for f in FACT_FIELDS if getattr(self, f) and not self.sources.get(f)]
        if missing:
            raise ValueError(f"facts without a source URL: {missing}")
        return self

    # --- reading -----------------------------------------------------------------------------------
    @classmethod
    def from_stored(cls, data: dict[str, Any] | None) -> "EnrichedCompany | None":
        """The model from `clients.enriched_data` (any supported schema version), None if empty."""
        if not data:
            return None
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"enriched_data has schema_version {version}; this version reads {SCHEMA_VERSION}")
        return cls.model_validate(data)

    def to_stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def facts(self) -> Iterator[Fact]:
        """Every fact with the URLs it came from: one Fact per text field, one per list item
        (the URLs that state that very value when known, else the field's sources)."""
        for name in FACT_FIELDS:
            value = getattr(self, name)
            if not value:
                continue
            urls = self.source_urls(name)
            per_value = self.value_sources.get(name, {})
            for item in (value if isinstance(value, list) else [value]):
                yield Fact(name, item, tuple(per_value.get(item) or urls))

    def source_urls(self, field: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.url for s in self.sources.get(field, [])))

    @property
    def fact_count(self) -> int:
        return sum(1 for _ in self.facts())

    @property
    def filled_fields(self) -> list[str]:
        return [f for f in FACT_FIELDS if getattr(self, f)]
