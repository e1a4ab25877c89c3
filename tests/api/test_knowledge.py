"""/api/knowledge: documents embedded on write, hybrid search, uploads → file store → searchable."""

import io
import time
import zipfile

import pytest
from fastapi.testclient import TestClient

from proposalflow import audit
from proposalflow.filestore import LocalFileStore, SupabaseFileStore, store_file
from proposalflow.settings import get_settings
from tests.fakes.supabase_storage import StorageServer

from .conftest import auth, make_settings

SERVICE_KEY = "service-role-key-for-the-local-storage-server"
PRICING = ("# Pricing\n\nOur website redesign packages start at EUR 12,000 for up to twenty pages. "
           "Hosting and maintenance cost EUR 300 per month.\n")
SEO = ("# Search engine optimisation\n\nWe audit technical SEO, fix crawl errors and write content briefs "
       "that rank. A typical engagement lasts three months.\n")


def test_documents_are_searchable_as_soon_as_they_are_written(api, editor, viewer, db):
    created = api.post("/api/knowledge", json={"title": "Pricing", "category": "Pricing", "content": PRICING,
                                               "metadata": {"owner": "sales"}}, headers=editor)
    assert created.status_code == 201, created.text
    document = created.json()
    assert document["category"] == "pricing" and document["chunk_count"] >= 1 and document["embedded_at"]
    assert document["source_uri"].startswith("api://knowledge/") and created.headers["location"].endswith(document["id"])
    api.post("/api/knowledge", json={"title": "SEO", "category": "services", "content": SEO}, headers=editor)

    hits = api.get("/api/knowledge/search", params={"q": "how much does a website redesign cost", "k": 2},
                   headers=viewer).json()
    assert hits[0]["document_id"] == document["id"] and "EUR 12,000" in hits[0]["text"]
    only_services = api.get("/api/knowledge/search", params={"q": "website redesign cost", "category": "services"},
                            headers=viewer).json()
    assert {h["category"] for h in only_services} == {"services"}

    # replace: new words, new chunks; the old words are no longer found
    replaced = api.put(f"/api/knowledge/{document['id']}", json={"title": "Pricing 2027", "category": "pricing",
                                                                  "content": "# Pricing\n\nRetainers from EUR 5,000."},
                       headers=editor)
    assert replaced.status_code == 200 and replaced.json()["content_hash"] != document["content_hash"]
    texts = [h["text"] for h in api.get("/api/knowledge/search", params={"q": "retainer", "k": 5}, headers=viewer).json()]
    assert any("EUR 5,000" in t for t in texts) and not any("EUR 12,000" in t for t in texts)

    deleted = api.delete(f"/api/knowledge/{document['id']}", headers=editor)
    assert deleted.status_code == 200 and deleted.json()["chunks_deleted"] >= 1
    assert db.execute("SELECT count(*) FROM knowledge_chunks WHERE document_id = %s", (document["id"],)).fetchone()[0] == 0
    assert [e.action for e in audit.entries(db, resource="knowledge", resource_id=document["id"])] == \
        ["delete", "update", "create"]


def test_list_filters_sorts_and_pages(api, editor, viewer):
    for i in range(7):
        api.post("/api/knowledge", json={"title": f"Case study {i}", "category": "case-studies" if i % 2 else "services",
                                         "content": f"Client {i} grew revenue by {i * 10} percent."}, headers=editor)
    first = api.get("/api/knowledge", params={"limit": 3, "sort": "-title"}, headers=viewer).json()
    second = api.get("/api/knowledge", params={"limit": 3, "sort": "-title", "cursor": first["next_cursor"]},
                     headers=viewer).json()
    titles = [d["title"] for d in first["items"] + second["items"]]
    assert titles == [f"Case study {i}" for i in range(6, 0, -1)]
    assert "content" not in first["items"][0] and first["items"][0]["excerpt"].startswith("Client 6")
    case_studies = api.get("/api/knowledge", params={"category": "case-studies"}, headers=viewer).json()["items"]
    assert len(case_studies) == 3


def test_empty_or_unknown_input_is_refused(api, editor, viewer):
    assert api.post("/api/knowledge", json={"title": "x", "content": "   "}, headers=editor).status_code == 422
    assert api.post("/api/knowledge", json={"title": "x", "content": "y", "chunk_count": 9},
                    headers=editor).status_code == 422
    assert api.get("/api/knowledge/search", params={"q": ""}, headers=viewer).status_code == 422
    assert api.get("/api/knowledge/search", params={"q": "x", "k": 0}, headers=viewer).status_code == 422
    assert api.post("/api/knowledge", json={"title": "x", "content": "y"}, headers=viewer).status_code == 403


def docx_bytes(text: str) -> bytes:
    from docx import Document

    buffer = io.BytesIO()
    document = Document()
    document.add_heading("Case study: Acme", 1)
    document.add_paragraph(text)
    document.save(buffer)
    return buffer.getvalue()


@pytest.fixture
def uploads_api(db_url, prefect_api_url):
    """Uploads start embed-knowledge runs: in this process, reporting to the session's Prefect server."""
    from api.main import create_app

    with TestClient(create_app(make_settings(PROPOSALFLOW_FLOW_RUNNER="in-process"))) as client:
        yield client


def wait_for_run(api, run_id: str, limit: float = 90.0) -> dict:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = api.get(f"/api/runs/{run_id}", headers=auth("viewer")).json()
        if status["state"] in ("completed", "failed", "cancelled"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {limit} s: {status}")


def upload_document(api, headers, name: str, content: bytes, content_type: str, **form) -> str:
    """Upload a file, wait for its embed-knowledge run, and return the id of the document it became."""
    response = api.post("/api/knowledge/upload", files={"file": (name, content, content_type)}, data=form,
                        headers=headers)
    assert response.status_code == 202, response.text
    status = wait_for_run(api, response.json()["id"])
    assert status["state"] == "completed", status
    [outcome] = status["result"]["uploads"]
    return outcome["document_id"]


def test_upload_is_stored_then_embedded_by_the_flow_and_becomes_searchable(uploads_api, api_settings, db):
    api, editor, viewer = uploads_api, auth("editor"), auth("viewer")
    files = {"file": ("acme-case-study.docx", docx_bytes("Acme doubled its qualified leads in six weeks."),
                      "application/vnd.openxmlformats-officedocument.wordprocessingml.document")}
    response = api.post("/api/knowledge/upload", files=files, data={"category": "case-studies"}, headers=editor)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["flow"] == "embed-knowledge" and response.headers["location"] == f"/api/runs/{accepted['id']}"
    assert accepted["source_uri"] == "upload://acme-case-study.docx" and accepted["document_id"] is None
    stored = api_settings.home_dir / "files" / accepted["original"]["key"]
    assert stored.read_bytes()[:2] == b"PK" and accepted["original"]["uri"] == stored.as_uri()

    status = wait_for_run(api, accepted["id"])
    assert status["state"] == "completed", status
    assert status["parameters"]["uploads"][0]["key"] == accepted["original"]["key"]  # the run names the stored file
    [outcome] = status["result"]["uploads"]
    assert outcome["status"] == "embedded" and status["result"]["embedded"] == 1
    document = api.get(f"/api/knowledge/{outcome['document_id']}", headers=viewer).json()
    assert document["source_uri"] == "upload://acme-case-study.docx" and document["category"] == "case-studies"
    assert document["metadata"]["original"] == {**accepted["original"], "content_type": document["metadata"]["original"]["content_type"]}

    hits = api.get("/api/knowledge/search", params={"q": "qualified leads", "k": 1}, headers=viewer).json()
    assert hits[0]["document_id"] == outcome["document_id"]
    original = api.get(f"/api/knowledge/{outcome['document_id']}/original", headers=viewer)
    assert original.status_code == 200 and original.content == stored.read_bytes()
    assert 'filename="acme-case-study.docx"' in original.headers["content-disposition"]

    again = api.post("/api/knowledge/upload", files=files, data={"category": "case-studies"}, headers=editor).json()
    assert again["document_id"] == outcome["document_id"]  # known now: the same name is the same document
    assert wait_for_run(api, again["id"])["result"]["uploads"][0]["status"] == "unchanged"
    assert [e.action for e in audit.entries(db, resource="knowledge")] == ["upload", "upload"]
    assert [e.action for e in audit.entries(db, resource="runs")] == ["trigger", "trigger"]


def test_an_upload_the_flow_cannot_read_fails_in_the_run_not_the_request(uploads_api):
    api = uploads_api
    response = api.post("/api/knowledge/upload", files={"file": ("broken.docx", b"PK\x03\x04 not really a docx",
                                                                 "application/octet-stream")}, headers=auth("editor"))
    assert response.status_code == 202, response.text
    status = wait_for_run(api, response.json()["id"])
    [outcome] = status["result"]["uploads"]
    assert outcome["status"] == "failed" and "broken.docx" in outcome["reason"] and status["result"]["failed"] == 1
    assert api.get("/api/knowledge", headers=auth("viewer")).json()["items"] == []


@pytest.mark.parametrize("name, content, content_type, status", [
    ("virus.exe", b"MZ\x90\x00", "application/octet-stream", 415),
    ("fake.pdf", b"<html>not a pdf</html>", "application/pdf", 415),
    ("notes.md", b"# Notes\n\x00\x01binary", "text/markdown", 415),
    ("notes.md", b"# Notes", "application/pdf", 415),
    ("empty.txt", b"", "text/plain", 422),
])
def test_upload_refuses_wrong_types(api, editor, name, content, content_type, status):
    response = api.post("/api/knowledge/upload", files={"file": (name, content, content_type)}, headers=editor)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_upload_size_limit_is_413_and_uploads_have_their_own_rate_limit(db_url, prefect_api_url):
    from api.main import create_app

    settings = make_settings(PROPOSALFLOW_UPLOAD_MAX_BYTES="2048", PROPOSALFLOW_RATE_LIMIT_UPLOADS="3/minute",
                             PROPOSALFLOW_FLOW_RUNNER="in-process")
    with TestClient(create_app(settings)) as api:
        editor = auth("editor")
        big = api.post("/api/knowledge/upload", files={"file": ("big.txt", b"word " * 1000, "text/plain")}, headers=editor)
        assert big.status_code == 413 and big.json()["type"] == "https://proposalflow.dev/problems/payload-too-large"
        huge = api.post("/api/knowledge/upload", files={"file": ("huge.txt", b"w" * 200_000, "text/plain")}, headers=editor)
        assert huge.status_code == 413  # refused from Content-Length, before reading the body
        for name in ("ok.txt", "ok1.txt"):  # the 3rd and 4th attempts (the Content-Length refusal never counted)
            assert api.post("/api/knowledge/upload", files={"file": (name, b"small notes", "text/plain")},
                            headers=editor).status_code == 202
        limited = api.post("/api/knowledge/upload", files={"file": ("ok2.txt", b"more notes", "text/plain")},
                           headers=editor)
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        # a JSON body over the general limit (1 MiB by default) is refused too
        too_long = api.post("/api/knowledge", json={"title": "x", "content": "y" * (1 << 20)}, headers=editor)
        assert too_long.status_code == 413


def test_supabase_storage_keeps_uploaded_originals(db_url, prefect_api_url, monkeypatch):
    """SUPABASE_URL + service key: the originals go to Supabase Storage through the supabase client,
    and the embed-knowledge run reads them back from there."""
    from api.main import create_app

    with StorageServer(SERVICE_KEY) as storage:
        for name, value in {"SUPABASE_URL": storage.url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
                            "PROPOSALFLOW_STORAGE_BUCKET": "knowledge-originals"}.items():
            monkeypatch.setenv(name, value)  # the run reads the environment, as a worker would
        get_settings.cache_clear()
        with TestClient(create_app(make_settings(PROPOSALFLOW_FLOW_RUNNER="in-process"))) as api:
            response = api.post("/api/knowledge/upload", files={"file": ("Pricing Notes.md", PRICING.encode(), "text/markdown")},
                                headers=auth("editor"))
            assert response.status_code == 202, response.text
            original = response.json()["original"]
            assert original["uri"] == f"storage://knowledge-originals/{original['key']}"
            assert storage.buckets.keys() == {"knowledge-originals"}  # created on first use
            assert storage.objects[("knowledge-originals", original["key"])][0] == PRICING.encode()
            assert original["key"].endswith("/pricing-notes.md")
            status = wait_for_run(api, response.json()["id"])
            assert status["state"] == "completed" and status["result"]["uploads"][0]["status"] == "embedded", status
            document_id = status["result"]["uploads"][0]["document_id"]
            hits = api.get("/api/knowledge/search", params={"q": "website redesign packages", "k": 1},
                           headers=auth("viewer")).json()
            assert hits[0]["document_id"] == document_id
            download = api.get(f"/api/knowledge/{document_id}/original", headers=auth("viewer"))
            assert download.content == PRICING.encode()
    get_settings.cache_clear()


def test_file_stores_directly(tmp_path):
    source = tmp_path / "a.txt"
    source.write_bytes(b"hello")
    local = LocalFileStore(tmp_path / "store")
    stored = store_file(local, source, "../../etc/passwd", "text/plain")
    assert stored.key.startswith("uploads/") and stored.key.endswith("/passwd") and local.get(stored.key) == b"hello"
    assert store_file(local, source, "a.txt", "text/plain").key != stored.key.replace("passwd", "x")
    local.delete(stored.key)
    with StorageServer(SERVICE_KEY) as storage:
        remote = SupabaseFileStore(storage.url, SERVICE_KEY, "b")
        key = store_file(remote, source, "a.txt", "text/plain").key
        assert remote.get(key) == b"hello"
        remote.delete(key)
        assert storage.objects == {}
        from proposalflow.errors import IntegrationFailed, NotFound

        with pytest.raises(NotFound):
            remote.get(key)
        with pytest.raises(IntegrationFailed, match="403"):
            SupabaseFileStore(storage.url, "wrong-key", "b").put("x/y.txt", source, "text/plain")


def test_zipfile_sanity():  # the docx helper really makes a zip container
    assert zipfile.is_zipfile(io.BytesIO(docx_bytes("x")))


def test_metadata_original_is_server_owned(api, editor, viewer):
    """`metadata.original` says which stored file GET …/original serves: never from the body."""
    forged = api.post("/api/knowledge", json={"title": "x", "content": "hello world", "metadata": {
        "owner": "me", "original": {"key": "knowledge/other/secret.md", "content_type": "text/html"}}}, headers=editor)
    assert forged.status_code == 422, forged.text
    assert forged.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in forged.json()["errors"]] == ["metadata"]
    assert "metadata.original is reserved" in forged.json()["errors"][0]["message"]
    plain = api.post("/api/knowledge", json={"title": "x", "content": "hello world"}, headers=editor).json()
    put = api.put(f"/api/knowledge/{plain['id']}", json={"title": "x", "content": "hello world", "metadata": {
        "original": {"key": "knowledge/other/secret.md"}}}, headers=editor)
    assert put.status_code == 422 and "metadata.original" in put.json()["detail"]
    assert api.get(f"/api/knowledge/{plain['id']}/original", headers=viewer).status_code == 404


def test_replacing_an_uploaded_document_keeps_its_original(uploads_api, editor, viewer):
    api = uploads_api
    document_id = upload_document(api, editor, "pricing.md", PRICING.encode(), "text/markdown")
    put = api.put(f"/api/knowledge/{document_id}", json={"title": "Pricing 2027", "content": "Retainers from EUR 5,000.",
                                                         "metadata": {"owner": "sales"}}, headers=editor)
    assert put.status_code == 200, put.text
    assert put.json()["metadata"]["owner"] == "sales" and put.json()["metadata"]["original"]["filename"] == "pricing.md"
    original = api.get(f"/api/knowledge/{document_id}/original", headers=viewer)
    assert original.status_code == 200 and original.content == PRICING.encode()
    # the same words again (no re-embedding): still kept
    api.put(f"/api/knowledge/{document_id}", json={"title": "Pricing 2027", "content": "Retainers from EUR 5,000."},
            headers=editor)
    assert api.get(f"/api/knowledge/{document_id}/original", headers=viewer).content == PRICING.encode()

