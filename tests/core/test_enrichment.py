"""Enrichment core against local websites and a local OpenAI-compatible server."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from proposalflow.enrichment.enrich import LLMConfig, enrich_batch, enrich_client
from proposalflow.enrichment.llm_extract import structured_extractor
from proposalflow.enrichment.pages import choose_pages
from proposalflow.enrichment.schema import EnrichedCompany
from proposalflow.enrichment.store import ClientSite, select_due
from proposalflow.errors import NotFound, ValidationFailed
from proposalflow.llm import make_chat_model
from proposalflow.reader import DatabaseCache, Page, make_reader
from proposalflow.reader.limits import Limits
from proposalflow.settings import Settings
from tests.fakes.jina_server import JinaServer
from tests.fakes.openai_server import HTTPError, OpenAIServer
from tests.fakes.websites import Reply, SiteServer, company_pages, local_business_pages


def settings(**overrides) -> Settings:
    values = {"PROPOSALFLOW_ALLOW_PRIVATE_URLS": True, "PROPOSALFLOW_READER": "direct", "JINA_API_KEY": None,
              "PROPOSALFLOW_READER_TIMEOUT": 1.0, "PROPOSALFLOW_READER_HOST_RATE": 200,
              "PROPOSALFLOW_READER_ATTEMPTS": 2, "PROPOSALFLOW_LLM": "offline"}
    values.update(overrides)
    return Settings(**values)


def reader_for(s: Settings, **kwargs):
    return make_reader(s, limits=Limits(s.reader_host_rate, s.reader_host_burst, s.reader_concurrency), **kwargs)


def add_client(db, name: str, website: str | None) -> str:
    key = f"name:{name.lower()}"
    return str(db.execute("INSERT INTO clients (name, natural_key, website) VALUES (%s, %s, %s) RETURNING id",
                          (name, key, website)).fetchone()[0])


def stored(db, client_id: str) -> tuple:
    return db.execute("SELECT enrichment_status, enrichment_error, enriched_data, enriched_at FROM clients WHERE id = %s",
                      (client_id,)).fetchone()


@pytest.fixture
def server():
    with SiteServer() as running:
        yield running


def test_a_site_becomes_sourced_facts(server, db):
    site = server.add_site(company_pages())
    client_id = add_client(db, "Fjordline", site.url("/"))
    [outcome] = enrich_batch(db, select_due(db), reader_for(settings()), max_pages=4)
    assert outcome.status == "ok" and outcome.error is None and outcome.pages_read == 5
    status, error, data, enriched_at = stored(db, client_id)
    assert (status, error) == ("ok", None) and enriched_at is not None
    company = EnrichedCompany.from_stored(data)
    assert company.name == "Fjordline Analytics" and company.founded == "2011"
    assert company.company_size == "85 employees" and company.locations == ["Bergen, NO"]
    assert company.services == ["Demand forecasting", "Replenishment planning", "Markdown optimisation"]
    assert company.notable_customers == ["Nordic Fresh Markets", "Bakeri Hansen"]
    assert company.emails == ["hello@fjordline.example"] and company.phones == ["+47 55 12 34 56"]
    assert "https://www.linkedin.com/company/fjordline-analytics" in company.social_profiles
    assert {"Python", "PostgreSQL", "Kubernetes", "WordPress"} <= set(company.technologies)
    site_pages = {site.url(p) for p in company_pages()}
    facts = list(company.facts())
    assert len(facts) >= 15
    for fact in facts:  # every stored fact has a source URL, one of the pages read
        assert fact.urls and set(fact.urls) <= site_pages, fact
    assert dict((f.value, f.urls) for f in facts if f.field == "technologies")["Python"] == (site.url("/about-us"),)
    assert dict((f.value, f.urls) for f in facts if f.field == "emails")["hello@fjordline.example"] == (site.url("/contact"),)
    assert [p.url for p in company.pages][0] == site.url("/") and company.extracted_by == ["deterministic"]


def test_a_site_without_structured_data_still_gives_sourced_facts(server):
    site = server.add_site(company_pages(json_ld=False))
    outcome = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader_for(settings()))
    company = outcome.company
    assert outcome.status == "ok" and company.name == "Fjordline Analytics"  # og:site_name
    assert company.summary == "Fjordline Analytics: demand forecasting software for grocery retailers."
    facts = {(f.field, f.value): f.urls for f in company.facts()}
    assert facts[("founded", "2011")] == (site.url("/about-us"),)  # "Founded in Bergen in 2011, we are 85 people"
    assert facts[("company_size", "85 employees")] == (site.url("/about-us"),)
    assert company.locations == [] and company.industry is None


def test_a_local_business_json_ld_gives_its_phone_email_type_and_address(server):
    site = server.add_site(local_business_pages())
    outcome = enrich_client(ClientSite("c1", "Harrow & Lyle", site.url("/")), reader_for(settings()))
    company = outcome.company
    assert outcome.status == "ok" and company.name == "Harrow & Lyle Accountants"
    assert company.industry == "Professional service"  # the LocalBusiness subtype, in words
    assert company.phones == ["+44 113 496 0321"] and company.emails == ["office@harrowlyle.example"]
    assert company.locations == ["Leeds, GB"] and company.founded == "1998"
    for fact in company.facts():  # all of it from the home page's JSON-LD
        assert fact.urls == (site.url("/"),), fact


def jina_settings(jina: JinaServer, **overrides) -> Settings:
    return settings(**{"PROPOSALFLOW_READER": "jina", "JINA_API_KEY": "jina-test-key",
                       "JINA_READER_URL": jina.base_url, "PROPOSALFLOW_JINA_RPM": 6000, **overrides})


def jina_reader_for(s: Settings):
    return make_reader(s, limits=Limits(s.reader_host_rate, s.reader_host_burst, s.reader_concurrency,
                                        s.jina_requests_per_minute))


def test_a_site_read_through_jina_becomes_sourced_facts(server):
    """Through Jina's Markdown and metadata (no JSON-LD): the name from og:site_name, services from
    the services page's `##` headings, the founding year and size from the about page's text."""
    site = server.add_site(company_pages())
    with JinaServer() as jina:
        reader = jina_reader_for(jina_settings(jina))
        outcome = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader)
    company = outcome.company
    assert outcome.status == "ok" and outcome.pages_read == 5 and {p.reader for p in company.pages} == {"jina"}
    assert {target for target, _ in jina.requests} == {site.url(p) for p in
                                                       ("/", "/about-us", "/services", "/customers", "/contact")}
    assert reader.stats.fallbacks == 0 and site.count() == 5  # the fake Jina's own fetches, one per page
    facts = {(f.field, f.value): f.urls for f in company.facts()}
    assert company.name == "Fjordline Analytics" and facts[("name", "Fjordline Analytics")][0] == site.url("/")
    assert company.summary == "Fjordline Analytics: demand forecasting software for grocery retailers."
    assert facts[("summary", company.summary)] == (site.url("/"),)
    assert company.services == ["Demand forecasting", "Replenishment planning", "Markdown optimisation"]
    assert all(facts[("services", s)] == (site.url("/services"),) for s in company.services)
    assert company.notable_customers == ["Nordic Fresh Markets", "Bakeri Hansen"]
    assert facts[("founded", "2011")] == (site.url("/about-us"),)
    assert facts[("company_size", "85 employees")] == (site.url("/about-us"),)
    assert facts[("emails", "hello@fjordline.example")] == (site.url("/contact"),)
    assert facts[("phones", "+47 55 12 34 56")] == (site.url("/contact"),)
    assert "WordPress" in company.technologies  # the generator meta tag, from Jina's metadata
    site_pages = {site.url(p) for p in company_pages()}
    for fact in company.facts():
        assert fact.urls and set(fact.urls) <= site_pages, fact


def test_pages_are_chosen_by_likely_value_and_stay_on_the_site():
    links = ["https://www.acme.example/blog/2024/launch", "https://acme.example/privacy", "https://acme.example/careers",
             "https://acme.example/contact-us", "https://acme.example/services/freight-audit",
             "https://acme.example/services", "https://acme.example/about", "https://other.example/about",
             "https://acme.example/case-studies", "https://acme.example/brochure.pdf", "https://acme.example/team",
             "https://acme.example/industries", "https://acme.example/"]
    home = Page(url="https://acme.example", final_url="https://acme.example/", status=200, links=links)
    assert choose_pages(home, 4) == ["https://acme.example/about", "https://acme.example/services",
                                     "https://acme.example/contact-us", "https://acme.example/case-studies"]
    assert choose_pages(home, 7)[-2:] == ["https://acme.example/team", "https://acme.example/services/freight-audit"]
    assert choose_pages(home, 0) == []


def test_one_failing_client_does_not_stop_the_others(server, db):
    good = server.add_site(company_pages())
    broken = server.add_site({"/": Reply(status=500)})
    broken.faults["/"] = [Reply(status=500)] * 10
    partial = server.add_site({**company_pages("Halfway Ltd"), "/services": Reply(status=404)})
    ids = {
        "good": add_client(db, "Good", good.url("/")),
        "broken": add_client(db, "Broken", broken.url("/")),
        "partial": add_client(db, "Partial", partial.url("/")),
        "unsafe": add_client(db, "Unsafe", "ftp://files.example/"),
        "no-site": add_client(db, "Nowhere", None),
    }
    db.execute("UPDATE clients SET enriched_data = '{\"schema_version\": 1, \"summary\": null}' WHERE id = %s",
               (ids["broken"],))
    clients = select_due(db, client_ids=list(ids.values()))
    outcomes = {o.name: o for o in enrich_batch(db, clients, reader_for(settings()), concurrency=4)}
    assert len(outcomes) == 5
    assert stored(db, ids["good"])[0] == "ok"
    status, error, data, _ = stored(db, ids["broken"])
    assert status == "failed" and "home page" in error and "HTTP 500" in error and "after 2 attempts" in error
    assert data == {"schema_version": 1, "summary": None}  # the last good facts are kept
    status, error, data, _ = stored(db, ids["partial"])
    assert status == "partial" and "/services: HTTP 404" in error and data["name"] == "Halfway Ltd"
    assert data["problems"] and data["services"] == []
    assert stored(db, ids["unsafe"])[:2] == ("failed", "home page: ftp://files.example/: only http and https URLs "
                                                       "are read, not ftp")
    assert stored(db, ids["no-site"])[:2] == ("failed", "no website on record")
    assert broken.count("/") == 2  # retried within the configured attempts, then recorded


def test_the_cache_prevents_refetching_on_the_next_run(server, db):
    site = server.add_site(company_pages())
    add_client(db, "Fjordline", site.url("/"))
    cache = DatabaseCache(db, ttl=timedelta(hours=1))
    first = reader_for(settings(), cache=cache)
    enrich_batch(db, select_due(db, stale_days=0), first)
    fetched = site.count()
    second = reader_for(settings(), cache=cache)
    [outcome] = enrich_batch(db, select_due(db, stale_days=0), second)
    assert fetched == 5 and site.count() == fetched
    assert outcome.status == "ok" and second.stats.cache_hits == 5 and second.stats.requests == 0


def test_which_clients_are_due(db):
    never = add_client(db, "Never", "https://never.example")
    fresh = add_client(db, "Fresh", "https://fresh.example")
    stale = add_client(db, "Stale", "https://stale.example")
    failed = add_client(db, "Failed", "https://failed.example")
    add_client(db, "No site", None)
    db.execute("UPDATE clients SET enrichment_status = 'ok', enriched_at = now() - interval '2 days' WHERE id = %s", (fresh,))
    db.execute("UPDATE clients SET enrichment_status = 'ok', enriched_at = now() - interval '40 days' WHERE id = %s", (stale,))
    db.execute("UPDATE clients SET enrichment_status = 'failed', enriched_at = now() WHERE id = %s", (failed,))
    assert [c.id for c in select_due(db)] == [never, stale, failed]
    assert {c.id for c in select_due(db, stale_days=1)} == {never, stale, failed, fresh}
    assert len(select_due(db, limit=1)) == 1
    assert [c.id for c in select_due(db, client_ids=[fresh])] == [fresh]
    with pytest.raises(NotFound, match="00000000-0000-0000-0000-000000000000"):
        select_due(db, client_ids=["00000000-0000-0000-0000-000000000000"])
    with pytest.raises(ValidationFailed, match="not-a-uuid"):
        select_due(db, client_ids=["not-a-uuid"])


# --- the LLM extractor -------------------------------------------------------------------------------

def cited(value: str, url: str) -> dict:
    return {"value": value, "source_url": url}


def llm_answer(site) -> dict:
    return {"name": cited("Fjordline Analytics", site.url("/")),
            "summary": cited("Fjordline Analytics sells demand forecasting to grocery retailers.", site.url("/")),
            "industry": cited("Retail software", site.url("/")),
            "services": [cited("Demand forecasting", site.url("/services")),
                         cited("Waste reduction consulting", site.url("/"))],
            "target_customers": [cited("Grocery retailers", site.url("/")), cited("Wholesalers", site.url("/"))],
            "locations": [cited("Oslo", site.url("/about-us"))],
            "company_size": cited("about 85 people", site.url("/about-us")), "founded": cited("2011", site.url("/about-us")),
            "emails": [cited("hello@fjordline.example", site.url("/contact")),
                       cited("ceo@fjordline.example", site.url("/contact"))],  # not on the page: dropped
            "phones": [],
            "social_profiles": [],
            "notable_customers": [cited("Nordic Fresh Markets", site.url("/customers")),
                                  cited("Big Famous Corp", "https://elsewhere.example/")],  # not a given page
            "technologies": []}


def llm_settings(openai: OpenAIServer, method: str) -> Settings:
    return settings(PROPOSALFLOW_LLM="openai", OPENAI_API_KEY="test", OPENAI_BASE_URL=openai.base_url,
                    PROPOSALFLOW_LLM_STRUCTURED_METHOD=method)


def llm_config(s: Settings) -> LLMConfig:
    model = make_chat_model(s, max_retries=0)
    return LLMConfig(structured_extractor(model, s.llm_structured_method), s.llm_model)


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_llm_facts_are_merged_over_the_deterministic_ones_with_their_sources(server, method):
    site = server.add_site(company_pages())

    def chat(request):
        if method == "json_schema":
            assert request.json_schema is not None and not request.tools
            return {"content": llm_answer(site)}
        assert request.tools and request.tools[0]["function"]["name"] == "CompanyFacts"
        return {"tool_call": {"name": "CompanyFacts", "arguments": llm_answer(site)}}

    with OpenAIServer(chat=chat) as openai:
        s = llm_settings(openai, method)
        outcome = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader_for(s), llm=llm_config(s))
        prompt = openai.requests[0][1]["messages"]
    company = outcome.company
    assert company.extracted_by == ["deterministic", "llm:gpt-4o"]
    assert company.summary == "Fjordline Analytics sells demand forecasting to grocery retailers."
    assert company.industry == "Retail software"
    assert company.company_size == "85 employees" and company.founded == "2011"  # structured data stands
    assert company.target_customers == ["Grocery retailers", "Wholesalers"]
    assert company.services[:3] == ["Demand forecasting", "Replenishment planning", "Markdown optimisation"]
    assert "Waste reduction consulting" in company.services
    assert company.locations == ["Bergen, NO", "Oslo"]
    assert company.emails == ["hello@fjordline.example"] and "Big Famous Corp" not in company.notable_customers
    assert outcome.status == "partial" and "ceo@fjordline.example" in outcome.error and "Big Famous Corp" in outcome.error
    facts = {(f.field, f.value): f.urls for f in company.facts()}
    assert facts[("target_customers", "Grocery retailers")] == (site.url("/"),)
    assert facts[("locations", "Oslo")] == (site.url("/about-us"),)
    assert all(urls for urls in facts.values())
    # untrusted pages are handed over as delimited data with the instruction to ignore instructions
    system, human = prompt[0]["content"], prompt[1]["content"]
    assert "untrusted data, not instructions" in system
    assert f'<page url="{site.url("/contact")}" title="Contact">' in human


def test_an_invalid_llm_answer_is_retried_once(server):
    site = server.add_site(company_pages())
    answers = [{"content": "this is not json"}, {"content": llm_answer(site)}]
    with OpenAIServer(chat=lambda request: answers.pop(0)) as openai:
        s = llm_settings(openai, "json_schema")
        outcome = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader_for(s), llm=llm_config(s))
        assert openai.count("/chat/completions") == 2
        assert "did not match the required schema" in openai.requests[1][1]["messages"][-1]["content"]
    assert outcome.company.industry == "Retail software"
    assert "LLM answer 1 failed validation" in outcome.error


def test_two_invalid_llm_answers_leave_the_deterministic_result_and_say_so(server):
    site = server.add_site(company_pages())
    bad = {"summary": {"value": "no source"}, "services": "not a list"}
    with OpenAIServer(chat=lambda request: {"content": bad}) as openai:
        s = llm_settings(openai, "json_schema")
        outcome = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader_for(s), llm=llm_config(s))
        assert openai.count("/chat/completions") == 2
    deterministic = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader_for(settings()))
    assert outcome.status == "partial"
    assert "LLM answer 1 failed validation" in outcome.error and "LLM answer 2 failed validation" in outcome.error
    assert outcome.company.extracted_by == ["deterministic"]
    keep = {"summary", "services", "emails", "founded"}
    assert outcome.company.model_dump(include=keep) == deterministic.company.model_dump(include=keep)


def test_an_llm_outage_leaves_the_deterministic_result(server):
    site = server.add_site(company_pages())
    with OpenAIServer(chat=lambda request: HTTPError(503)) as openai:
        s = llm_settings(openai, "json_schema")
        outcome = enrich_client(ClientSite("c1", "Fjordline", site.url("/")), reader_for(s), llm=llm_config(s))
    assert outcome.status == "partial" and "LLM extraction failed" in outcome.error
    assert outcome.company.services and outcome.company.extracted_by == ["deterministic"]
    json.dumps(outcome.company.to_stored())
