"""nightly: ingest from the configured source → embed changed knowledge; failures named, not fatal to the rest."""

import pytest

from flows.nightly import nightly
from proposalflow.settings import get_settings
from tests.fakes.websites import SiteServer, company_pages


@pytest.fixture
def site(monkeypatch):
    """Acme's website, on loopback; the reader may read it (and nothing is slow)."""
    for key, value in {"PROPOSALFLOW_ALLOW_PRIVATE_URLS": "true", "PROPOSALFLOW_READER": "direct",
                       "PROPOSALFLOW_READER_HOST_RATE": "100", "PROPOSALFLOW_READER_TIMEOUT": "2",
                       "PROPOSALFLOW_LLM": "offline"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("JINA_API_KEY", raising=False)
    with SiteServer() as server:
        yield server.add_site(company_pages("Acme Analytics"))


@pytest.fixture
def knowledge_dir(tmp_path):
    folder = tmp_path / "knowledge"
    folder.mkdir()
    (folder / "services.md").write_text("# Data platforms\n\nWe build data platforms on PostgreSQL for mid-size firms.\n")
    return folder


def configure(monkeypatch, source=None, knowledge=None):
    for name, value in (("PROPOSALFLOW_CLIENTS_SOURCE", source), ("PROPOSALFLOW_KNOWLEDGE_DIR", knowledge)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()


def test_nightly_ingests_enriches_and_embeds(db, prefect_api_url, tmp_path, knowledge_dir, site, monkeypatch):
    # Acme is known already, with its (loopback) website; tonight's file brings two without one
    db.execute("INSERT INTO clients (name, natural_key, website) VALUES ('Acme', 'name:acme', %s)", (site.url("/"),))
    source = tmp_path / "clients.csv"
    source.write_text("name,email\nBeta,info@beta.io\nGamma,info@gamma.io\n")
    configure(monkeypatch, source=source, knowledge=knowledge_dir)
    report = nightly()
    assert report["ingest"]["inserted"] == 2
    assert (report["enrich"]["clients"], report["enrich"]["ok"]) == (1, 1)
    assert db.execute("SELECT name, enrichment_status FROM clients ORDER BY name").fetchall() == \
        [("Acme", "ok"), ("Beta", None), ("Gamma", None)]
    assert db.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 1
    again = nightly()  # nothing changed, nothing stale: nothing written
    assert (again["ingest"]["inserted"], again["ingest"]["updated"], again["enrich"]["clients"]) == (0, 0, 0)
    assert db.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 1


def test_a_broken_source_fails_the_run_after_the_other_steps(db, prefect_api_url, tmp_path, knowledge_dir, monkeypatch):
    broken = tmp_path / "broken.csv"
    broken.write_text("")
    configure(monkeypatch, source=broken, knowledge=knowledge_dir)
    state = nightly(return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match="ingest: .*broken.csv: the file is empty"):
        state.result()
    assert db.execute("SELECT count(*) FROM knowledge_base").fetchone()[0] == 1  # knowledge still ran


def test_with_nothing_configured_every_step_says_why_it_skipped(db, prefect_api_url, monkeypatch):
    configure(monkeypatch)
    report = nightly()
    assert "PROPOSALFLOW_CLIENTS_SOURCE" in report["ingest"]["skipped"]
    assert report["enrich"]["clients"] == 0  # no client is due
    assert "PROPOSALFLOW_KNOWLEDGE_DIR" in report["knowledge"]["skipped"]
