"""`proposalflow enrich` as a user runs it, and the demo's offline enrich step."""

from __future__ import annotations

import json

import pytest

from proposalflow.enrichment.schema import EnrichedCompany
from tests.fakes.websites import Reply, SiteServer, company_pages
from tests.support import run_cli


def add_client(db, name: str, website: str) -> str:
    return str(db.execute("INSERT INTO clients (name, natural_key, website) VALUES (%s, %s, %s) RETURNING id",
                          (name, f"name:{name.lower()}", website)).fetchone()[0])


@pytest.fixture
def env(cli_env):
    return {**cli_env, "PROPOSALFLOW_ALLOW_PRIVATE_URLS": "true", "PROPOSALFLOW_READER_HOST_RATE": "100",
            "PROPOSALFLOW_READER_TIMEOUT": "1", "PROPOSALFLOW_READER_ATTEMPTS": "1", "PROPOSALFLOW_LLM": "offline"}


def test_enrich_reports_each_client_as_json_and_as_a_table(db, env):
    with SiteServer() as server:
        good = server.add_site(company_pages())
        bad = server.add_site({"/": Reply(status=404)})
        good_id = add_client(db, "Fjordline", good.url("/"))
        add_client(db, "Gone Ltd", bad.url("/"))
        result = run_cli(["enrich", "--json"], env)
        document = json.loads(result.stdout)
        assert (document["clients"], document["ok"], document["failed"]) == (2, 1, 1)
        by_name = {r["name"]: r for r in document["results"]}
        assert by_name["Fjordline"]["facts"] > 10 and by_name["Fjordline"]["pages"] == 5
        assert "HTTP 404" in by_name["Gone Ltd"]["error"]

        table = run_cli(["enrich", "--client", good_id], env)
        assert "Fjordline" in table.stdout and "ok" in table.stdout and "pages from cache" in table.stdout
        assert "Gone Ltd" not in table.stdout

        nothing = json.loads(run_cli(["enrich", "--json", "--stale-days", "30", "--limit", "1"], env).stdout)
        assert nothing["clients"] == 1 and nothing["results"][0]["name"] == "Gone Ltd"  # failed: due again
    data = db.execute("SELECT enriched_data FROM clients WHERE id = %s", (good_id,)).fetchone()[0]
    assert all(f.urls for f in EnrichedCompany.from_stored(data).facts())


def test_enrich_refuses_unknown_and_malformed_ids(db, env):
    result = run_cli(["enrich", "--client", "nope", "--json"], env, check=False)
    assert result.returncode == 1 and json.loads(result.stdout)["error"]["type"] == "validation"
    result = run_cli(["enrich", "--client", "00000000-0000-0000-0000-000000000001"], env, check=False)
    assert result.returncode == 1 and "no client with id 00000000-0000-0000-0000-000000000001" in result.stderr


@pytest.mark.slow
def test_the_demo_enriches_the_sample_clients_offline_and_a_second_run_fetches_nothing(db, prefect_api_url,
                                                                                       monkeypatch):
    """The demo's enrich step, in process: private addresses refused, so any network fetch of the
    fictional domains would fail — everything must come from the shipped snapshots."""
    from proposalflow.cli.demo import enrich_step, ingest_step
    from proposalflow.settings import get_settings

    monkeypatch.setenv("PROPOSALFLOW_LLM", "offline")
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    get_settings.cache_clear()
    ingest_step(as_json=True)
    first = enrich_step(as_json=True)
    assert first["snapshots"] == {"pages": 229, "seeded": 229, "already_cached": 0}
    assert first["clients"] == 53 and first["ok"] == 53, [r for r in first["results"] if r["status"] != "ok"]
    assert first["reader"]["requests"] == 0 and first["reader"]["cache_hits"] == first["pages"] == 229
    rows = db.execute("SELECT enriched_data FROM clients WHERE enrichment_status = 'ok'").fetchall()
    companies = [EnrichedCompany.from_stored(r[0]) for r in rows]
    assert len(companies) == 53
    assert all(c.emails and c.services and c.summary for c in companies)
    assert sum(1 for c in companies if c.founded) >= 40  # JSON-LD on most sites
    assert all(fact.urls and fact.urls[0].startswith("http") for c in companies for fact in c.facts())
    assert all(p.reader == "snapshot" for c in companies for p in c.pages)

    second = enrich_step(as_json=True)
    assert second["snapshots"] == {"pages": 229, "seeded": 0, "already_cached": 229}
    assert second["reader"]["requests"] == 0 and second["reader"]["fetched"] == 0 and second["ok"] == 53
