from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from proposalflow.enrichment.schema import EnrichedCompany, Fact, FactSource

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def src(url: str) -> list[FactSource]:
    return [FactSource(url=url, fetched_at=NOW)]


def test_a_fact_without_a_source_is_refused():
    with pytest.raises(ValidationError, match="facts without a source URL: \\['services'\\]"):
        EnrichedCompany(summary="Forecasts", services=["Audit"], sources={"summary": src("https://a.example/")})


def test_facts_yield_field_value_and_urls_and_survive_storage():
    company = EnrichedCompany(summary="Forecasts", services=["Audit", "Planning"],
                              sources={"summary": src("https://a.example/"),
                                       "services": src("https://a.example/services") + src("https://a.example/")})
    stored = company.to_stored()
    assert stored["schema_version"] == 1 and stored["sources"]["summary"][0]["url"] == "https://a.example/"
    again = EnrichedCompany.from_stored(stored)
    assert list(again.facts()) == [
        Fact("summary", "Forecasts", ("https://a.example/",)),
        Fact("services", "Audit", ("https://a.example/services", "https://a.example/")),
        Fact("services", "Planning", ("https://a.example/services", "https://a.example/")),
    ]
    assert EnrichedCompany.from_stored(None) is None
    with pytest.raises(ValueError, match="schema_version 99"):
        EnrichedCompany.from_stored({**stored, "schema_version": 99})
