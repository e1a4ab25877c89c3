"""The enrich-clients flow as Prefect runs it, against local websites."""

from __future__ import annotations

import pytest

from flows.enrich_clients import enrich_clients
from proposalflow.enrichment.schema import EnrichedCompany
from tests.fakes.websites import Reply, SiteServer, company_pages
from tests.flows.prefect_events import related_ids, wait_for_events


@pytest.fixture
def enrich_env(db_url, monkeypatch):
    for key, value in {"PROPOSALFLOW_ALLOW_PRIVATE_URLS": "true", "PROPOSALFLOW_READER": "direct",
                       "PROPOSALFLOW_READER_HOST_RATE": "100", "PROPOSALFLOW_READER_TIMEOUT": "1",
                       "PROPOSALFLOW_READER_ATTEMPTS": "2", "PROPOSALFLOW_ENRICH_BATCH_SIZE": "2",
                       "PROPOSALFLOW_LLM": "offline"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    from proposalflow.settings import get_settings

    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def add_client(db, name: str, website: str) -> str:
    return str(db.execute("INSERT INTO clients (name, natural_key, website) VALUES (%s, %s, %s) RETURNING id",
                          (name, f"name:{name.lower()}", website)).fetchone()[0])


def test_flow_enriches_due_clients_in_batches_and_a_failure_stops_nothing(db, prefect_api_url, enrich_env):
    with SiteServer() as server:
        sites = [server.add_site(company_pages(f"Company {i}")) for i in range(3)]
        broken = server.add_site({"/": Reply(status=503)})
        broken.faults["/"] = [Reply(status=503)] * 10
        ids = [add_client(db, f"Company {i}", s.url("/")) for i, s in enumerate(sites)]
        broken_id = add_client(db, "Broken", broken.url("/"))

        state = enrich_clients(return_state=True)
        assert state.is_completed()
        summary = state.result()
        assert (summary["clients"], summary["ok"], summary["partial"], summary["failed"]) == (4, 3, 0, 1)
        assert summary["reader"]["fetched"] == 15 and summary["reader"]["cache_hits"] == 0
        failed = next(r for r in summary["results"] if r["client_id"] == broken_id)
        assert "HTTP 503" in failed["error"]
        rows = dict(db.execute("SELECT id::text, enrichment_status FROM clients").fetchall())
        assert rows == {**{i: "ok" for i in ids}, broken_id: "failed"}
        for (data,) in db.execute("SELECT enriched_data FROM clients WHERE enrichment_status = 'ok'"):
            company = EnrichedCompany.from_stored(data)
            assert company.fact_count > 10 and all(fact.urls for fact in company.facts())

        # one event per client, about the client, from inside the flow run
        events = wait_for_events(prefect_api_url, "proposalflow.client.enriched", count=4,
                                 resource_id=[f"proposalflow.client.{i}" for i in ids + [broken_id]])
        by_client = {e["resource"]["prefect.resource.id"]: e for e in events}
        assert set(by_client) >= {f"proposalflow.client.{i}" for i in ids + [broken_id]}
        assert by_client[f"proposalflow.client.{broken_id}"]["payload"]["status"] == "failed"
        assert f"prefect.flow-run.{state.state_details.flow_run_id}" in related_ids(by_client[f"proposalflow.client.{ids[0]}"])

        # the next run picks only the failed client; forced ids are read from the cache
        fetched = server.requests
        again = enrich_clients(stale_days=30)
        assert again["clients"] == 1 and again["failed"] == 1
        forced = enrich_clients(client_ids=ids[:2])
        assert forced["ok"] == 2 and forced["reader"]["cache_hits"] == 10 and forced["reader"]["requests"] == 0
        assert server.requests == fetched + 2  # only the broken site's two attempts


def test_flow_with_nothing_due_does_nothing_but_prune_the_expired_cache(db, prefect_api_url, enrich_env,
                                                                         monkeypatch):
    monkeypatch.setenv("PROPOSALFLOW_READER_CACHE_TTL_HOURS", "24")
    for url, age, reader in (("https://expired.example/", "3 days", "direct"), ("https://fresh.example/", "1 hour", "jina"),
                             ("https://demo.example/", "400 days", "snapshot")):
        db.execute("""INSERT INTO reader_cache (url, final_url, status, reader, content_hash, page, fetched_at)
                      VALUES (%s, %s, 200, %s, '', '{}', now() - %s::interval)""", (url, url, reader, age))
    summary = enrich_clients(limit=5)
    assert summary == {"clients": 0, "ok": 0, "partial": 0, "failed": 0, "facts": 0, "pages": 0, "reader": {},
                       "results": []}
    kept = sorted(r[0] for r in db.execute("SELECT url FROM reader_cache"))
    assert kept == ["https://demo.example/", "https://fresh.example/"]
