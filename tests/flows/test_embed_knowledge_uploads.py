"""embed-knowledge `uploads`: originals kept in the file store are read back, embedded and linked."""

from flows.embed_knowledge import embed_knowledge
from proposalflow.filestore import make_file_store, store_file
from proposalflow.knowledge import store
from proposalflow.settings import get_settings


def test_flow_embeds_stored_uploads_and_records_their_original(db, prefect_api_url, tmp_path):
    source = tmp_path / "Rates 2027.md"
    source.write_text("# Rates\n\nAds management costs 15% of the monthly spend.")
    stored = store_file(make_file_store(get_settings()), source, source.name, "text/markdown", prefix="knowledge")
    missing = "knowledge/0000000000000000/gone.md"

    result = embed_knowledge(uploads=[{"key": stored.key, "filename": source.name, "title": "Our rates"},
                                      {"key": missing}], category="Pricing".lower())
    assert (result["documents"], result["embedded"], result["failed"]) == (2, 1, 1)
    done, failed = result["uploads"]
    assert done["status"] == "embedded" and done["source_uri"] == "upload://rates-2027.md"
    assert failed["status"] == "failed" and missing in failed["reason"]
    assert missing in store.failures(db)[0]["reason"]
    title, category, metadata = db.execute("SELECT title, category, metadata FROM knowledge_base WHERE id = %s",
                                           (done["document_id"],)).fetchone()
    assert (title, category) == ("Our rates", "pricing")
    assert metadata["original"] == {"uri": stored.uri, "key": stored.key, "filename": "Rates 2027.md",
                                    "size": stored.size, "sha256": stored.sha256, "content_type": "text/markdown"}

    again = embed_knowledge(uploads=[{"key": stored.key, "filename": source.name, "title": "Our rates"}],
                            category="pricing")
    assert again["uploads"][0] == {**done, "status": "unchanged"}
