"""The embed-knowledge flow: a real Prefect run against the session's Prefect server."""

import pytest

from flows.embed_knowledge import embed_knowledge
from proposalflow.errors import EmbeddingModelMismatch, ValidationFailed
from proposalflow.knowledge.documents import file_uri
from proposalflow.settings import get_settings
from tests.fakes.openai_server import OpenAIServer
from tests.flows.prefect_events import wait_for_events


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "knowledge"
    for category, name, text in [("services", "seo.md", "# SEO\n\nLocal SEO for clinics."),
                                 ("services", "ads.md", "# Ads\n\nGoogle Ads for retailers."),
                                 ("pricing", "rates.md", "# Rates\n\nAds management: 15% of spend."),
                                 ("pricing", "corrupt.pdf", None)]:
        (root / category).mkdir(parents=True, exist_ok=True)
        path = root / category / name
        path.write_bytes(b"%PDF-1.4 broken") if text is None else path.write_text(text)
    return root


def test_flow_embeds_skips_prunes_and_announces(db, prefect_api_url, folder):
    first = embed_knowledge(folder=str(folder))
    assert (first["documents"], first["embedded"], first["failed"], first["chunks"]) == (4, 3, 1, 3)
    assert "corrupt.pdf" in first["failures"][0]["reason"]
    assert first["totals"] == {"documents": 3, "chunks": 3}
    rates = next(d for d in first["embedded_documents"] if d["source_uri"].endswith("rates.md"))
    (event,) = wait_for_events(prefect_api_url, "proposalflow.knowledge.embedded",
                               resource_id=f"proposalflow.knowledge.{rates['id']}")
    assert event["payload"] == {"source_uri": rates["source_uri"], "category": "pricing", "chunks": 1}
    assert event["resource"]["prefect.resource.name"] == "Rates"

    (folder / "services" / "ads.md").unlink()
    second = embed_knowledge(folder=str(folder), prune=True)
    assert (second["embedded"], second["chunks"], second["unchanged"], second["pruned"]) == (0, 0, 2, 1)
    uris = {r[0] for r in db.execute("SELECT source_uri FROM knowledge_base")}
    assert uris == {file_uri(folder / "services" / "seo.md"), file_uri(folder / "pricing" / "rates.md")}


def test_flow_refuses_another_model_until_reembed(db, prefect_api_url, folder, monkeypatch):
    embed_knowledge(files=[str(folder / "pricing" / "rates.md")])
    with OpenAIServer() as server:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        get_settings.cache_clear()
        state = embed_knowledge(folder=str(folder), return_state=True)
        assert state.is_failed()
        with pytest.raises(EmbeddingModelMismatch, match="proposalflow kb reembed"):
            state.result()
        summary = embed_knowledge(reembed=True)
    assert (summary["embedded"], summary["chunks"]) == (1, 1)
    assert db.execute("SELECT model, dimension FROM knowledge_embedding_model").fetchone() == \
        ("text-embedding-3-small", 1536)
    assert db.execute("SELECT vector_dims(embedding) FROM knowledge_chunks").fetchone()[0] == 1536


def test_prune_without_a_folder_is_refused(db, prefect_api_url):
    state = embed_knowledge(files=["/nonexistent.md"], prune=True, return_state=True)
    with pytest.raises(ValidationFailed, match="--prune needs a folder"):
        state.result()


def test_url_sources_are_read_through_the_web_reader(db, prefect_api_url, monkeypatch):
    import http.server
    import threading

    page = ("<html><head><title>Brightpath careers</title></head><body><nav>Menu Home About</nav><main>"
            "<h1>Careers at Brightpath</h1><p>" + "We hire senior paid-media specialists in Manchester. " * 6 +
            "</p></main></body></html>").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/careers":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("PROPOSALFLOW_ALLOW_PRIVATE_URLS", "true")
    get_settings.cache_clear()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        summary = embed_knowledge(urls=[f"{base}/careers", f"{base}/gone"], category="team")
    finally:
        server.shutdown()
        server.server_close()
    assert (summary["embedded"], summary["failed"]) == (1, 1)
    assert summary["failures"][0]["source_uri"] == f"{base}/gone" and "404" in summary["failures"][0]["reason"]
    title, category, text = db.execute(
        "SELECT d.title, d.category, c.text FROM knowledge_base d JOIN knowledge_chunks c ON c.document_id = d.id"
        " WHERE d.source_uri = %s", (f"{base}/careers",)).fetchone()
    assert (title, category) == ("Brightpath careers", "team")
    assert "senior paid-media specialists" in text and "Menu Home" not in text
