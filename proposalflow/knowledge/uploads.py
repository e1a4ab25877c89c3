"""Uploaded files → knowledge documents: what embed-knowledge does with its `uploads` parameter.

The API keeps an upload's original in the file store (`proposalflow.filestore`) and starts an
embed-knowledge run naming its storage key; the run reads the file back from the store, embeds it
as the document `upload://<file name>` (a new version under the same name replaces the old one's
chunks) and records where the original is kept in the document's `metadata.original`.
"""

from __future__ import annotations

import contextlib
import hashlib
import mimetypes
import tempfile
from pathlib import Path

import psycopg
from langchain_core.embeddings import Embeddings
from pydantic import Field

from ..inputs import Input
from ..errors import NotFound, SourceUnreadable
from ..filestore import FileStore, LocalFileStore, safe_name
from . import store
from .chunking import ChunkSettings
from .ingest import DocumentOutcome, KnowledgeSummary, add_file

UPLOAD_PREFIX = "knowledge/"  # where the API keeps uploaded originals in the file store
KEY_PATTERN = r"^knowledge/[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$"


class StoredUpload(Input):
    """An uploaded file already in the file store."""

    key: str = Field(pattern=KEY_PATTERN, max_length=300, description="Its storage key, e.g. knowledge/<sha>/a.pdf")
    filename: str | None = Field(None, max_length=255, description="The name it was uploaded under")
    title: str | None = Field(None, max_length=500)


def upload_source_uri(filename: str) -> str:
    return f"upload://{safe_name(filename)}"


def document_id_for(conn: psycopg.Connection, filename: str) -> str | None:
    """The id of the document an earlier upload under this name became, if any."""
    row = conn.execute("SELECT id FROM knowledge_base WHERE source_uri = %s", (upload_source_uri(filename),)).fetchone()
    return str(row[0]) if row else None


def stored_uri(files: FileStore, key: str) -> str | None:
    """file:///… for the local store, storage://<bucket>/<key> for Supabase Storage."""
    if isinstance(files, LocalFileStore):
        return (files.root / key).resolve().as_uri()
    bucket = getattr(files, "bucket", None)
    return f"storage://{bucket}/{key}" if bucket else None


def embed_upload(conn: psycopg.Connection, embedder: Embeddings, files: FileStore, upload: StoredUpload, *,
                 category: str | None = None, chunk_settings: ChunkSettings | None = None,
                 scratch: Path | None = None) -> DocumentOutcome:
    """Read the stored original, embed it (unchanged words: nothing re-embedded) and record the
    original in `metadata.original` — in one transaction on an autocommit connection, so a reader
    never sees the new chunks without their original. Raises NotFound / SourceUnreadable naming the key."""
    from .crud import set_original

    data = files.get(upload.key)
    name = safe_name(upload.key.rsplit("/", 1)[-1])
    filename = upload.filename or name
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        with conn.transaction() if conn.autocommit else contextlib.nullcontext():
            outcome = add_file(conn, embedder, path, category=category, source_uri=upload_source_uri(filename),
                               title=upload.title, chunk_settings=chunk_settings)
            set_original(conn, outcome.document_id, {
                "uri": stored_uri(files, upload.key), "key": upload.key, "filename": filename, "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "content_type": mimetypes.guess_type(name)[0] or "application/octet-stream"})
        if not conn.autocommit:
            conn.commit()
    return outcome


def embed_uploads(conn: psycopg.Connection, embedder: Embeddings, files: FileStore, uploads: list[StoredUpload], *,
                  category: str | None = None, chunk_settings: ChunkSettings | None = None,
                  scratch: Path | None = None, flow_run_id: str | None = None) -> tuple[KnowledgeSummary, list[dict]]:
    """A batch of uploads; one that cannot be read is a failure in the summary (and in
    `knowledge_failures`), the others go on. Returns the summary and, per upload,
    {key, source_uri, status: embedded | unchanged | failed, document_id | reason}."""
    summary, outcomes = KnowledgeSummary(), []
    for upload in uploads:
        source_uri = upload_source_uri(upload.filename or upload.key.rsplit("/", 1)[-1])
        summary.documents += 1
        try:
            outcome = embed_upload(conn, embedder, files, upload, category=category, chunk_settings=chunk_settings,
                                   scratch=scratch)
        except (NotFound, SourceUnreadable) as exc:
            summary.failed += 1
            summary.failures.append({"source_uri": source_uri, "reason": f"{upload.key}: {exc}"})
            outcomes.append({"key": upload.key, "source_uri": source_uri, "status": "failed", "reason": str(exc)})
            continue
        summary.seen.append(outcome.source_uri)
        if outcome.status == "embedded":
            summary.embedded += 1
            summary.chunks += outcome.chunks
            summary.embedded_documents.append({"id": outcome.document_id, "source_uri": outcome.source_uri,
                                               "title": outcome.title, "category": outcome.category,
                                               "chunks": outcome.chunks})
        else:
            summary.unchanged += 1
        outcomes.append({"key": upload.key, "source_uri": outcome.source_uri, "status": outcome.status,
                         "document_id": outcome.document_id})
    if summary.failures:
        store.record_failures(conn, [(f["source_uri"], f["reason"]) for f in summary.failures], flow_run_id)
        if not conn.autocommit:
            conn.commit()
    return summary, outcomes
