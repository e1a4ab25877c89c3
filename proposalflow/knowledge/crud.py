"""Knowledge documents one at a time (the API's /api/knowledge): create, read, list, replace, delete.

A document written here is chunked and embedded at once through the knowledge core
(`ingest.embed_documents`), so it is searchable as soon as the call returns. Its `source_uri` is
`api://knowledge/<uuid>`; documents that came from files or URLs keep theirs (replacing one here
makes it differ from its file until the next embed-knowledge run of that folder restores the file's
words). Server-owned fields — id, source URI, hash, chunk count, timestamps, and `metadata.original` (where an
uploaded file's original is kept) — are never input; a replace keeps the stored `original`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, Field, field_validator

from ..inputs import Input
from ..errors import NotFound, ValidationFailed
from ..pagination import Page, SortKey, keyset
from . import store
from .chunking import ChunkSettings
from .documents import Document
from .embedders import embedding_model
from .ingest import embed_documents, signature

EXCERPT_CHARS = 280
SORT_KEYS = {
    "title": SortKey("coalesce(k.title, k.source_uri)", "text"),
    "created_at": SortKey("k.created_at", "timestamp"),
    "updated_at": SortKey("k.updated_at", "timestamp"),
}
# metadata keys only the server writes (`original`: where an uploaded file is kept; GET …/original serves it)
SERVER_METADATA_KEYS = frozenset({"original"})
KnowledgeSort = Literal["title", "-title", "created_at", "-created_at", "updated_at", "-updated_at"]


class KnowledgeInput(Input):
    title: str = Field(min_length=1, max_length=500)
    category: str | None = Field(None, max_length=100, description="e.g. services, case-studies, pricing")
    content: str = Field(min_length=1, max_length=2_000_000, description="Markdown or plain text")
    metadata: dict[str, Any] = Field(
        default_factory=dict, max_length=100,
        description=f"Your own keys; {', '.join(sorted(SERVER_METADATA_KEYS))} is reserved (set by the server for uploads)",
        json_schema_extra={"not": {"anyOf": [{"required": [k]} for k in sorted(SERVER_METADATA_KEYS)]}})

    @field_validator("metadata")
    @classmethod
    def _no_server_keys(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        reserved = sorted(SERVER_METADATA_KEYS & metadata.keys())
        if reserved:
            raise ValueError(f"metadata.{reserved[0]} is reserved: the server records an uploaded file's original there")
        return metadata


class KnowledgeSummary(BaseModel):
    id: uuid.UUID
    title: str | None
    category: str | None
    source_uri: str
    excerpt: str
    chunk_count: int
    embedded_at: datetime | None
    created_at: datetime
    updated_at: datetime


class KnowledgeDocument(KnowledgeSummary):
    content: str | None
    metadata: dict[str, Any]
    content_hash: str | None


_SELECT = """SELECT k.id, k.title, k.category, k.source_uri, left(coalesce(k.content, ''), {excerpt}), k.chunk_count,
                    k.embedded_at, k.created_at, k.updated_at, k.content, k.metadata, k.content_hash
               FROM knowledge_base k""".format(excerpt=EXCERPT_CHARS)


def _document(row: tuple) -> KnowledgeDocument:
    return KnowledgeDocument(id=row[0], title=row[1], category=row[2], source_uri=row[3], excerpt=row[4],
                             chunk_count=row[5], embedded_at=row[6], created_at=row[7], updated_at=row[8],
                             content=row[9], metadata=row[10] or {}, content_hash=row[11])


def _clean(data: KnowledgeInput) -> KnowledgeInput:
    title, content = data.title.strip(), data.content.strip()
    errors = []
    if not title:
        errors.append({"field": "title", "message": "title is empty"})
    if not content:
        errors.append({"field": "content", "message": "content is empty"})
    if errors:
        raise ValidationFailed("; ".join(e["message"] for e in errors), errors)
    category = (data.category or "").strip().lower() or None
    return data.model_copy(update={"title": title, "content": content, "category": category})


def save_document(conn: psycopg.Connection, embedder: Embeddings, source_uri: str, data: KnowledgeInput,
                  chunk_settings: ChunkSettings | None = None, server_metadata: dict[str, Any] | None = None) -> uuid.UUID:
    """Upsert the document under `source_uri` and replace its chunks (one write transaction).
    `server_metadata` (e.g. a kept `original`) is merged over the caller's metadata."""
    data = _clean(data)
    if server_metadata:
        data = data.model_copy(update={"metadata": {**data.metadata, **server_metadata}})
    model = embedding_model(embedder)
    store.bind_model(conn, model)
    chunk_settings = chunk_settings or ChunkSettings()
    document = Document(source_uri=source_uri, title=data.title, category=data.category, text=data.content,
                        metadata=data.metadata)
    known = store.stored_documents(conn, [source_uri]).get(source_uri)
    if known and known.content_hash == document.content_hash and known.chunked_with == signature(model, chunk_settings):
        conn.execute("UPDATE knowledge_base SET metadata = %s WHERE id = %s", (Jsonb(data.metadata), known.id))
        return uuid.UUID(known.id)  # same words, same model: the chunks stand
    summary = embed_documents(conn, embedder, [document], chunk_settings, model=model)
    if summary.failures:
        reason = summary.failures[0]["reason"]
        raise ValidationFailed(reason, [{"field": "content", "message": reason}])
    return uuid.UUID(str(summary.embedded_documents[0]["id"]))


def create_document(conn: psycopg.Connection, embedder: Embeddings, data: KnowledgeInput) -> KnowledgeDocument:
    document_id = save_document(conn, embedder, f"api://knowledge/{uuid.uuid4()}", data)
    return get_document(conn, document_id)


def replace_document(conn: psycopg.Connection, embedder: Embeddings, document_id: str | uuid.UUID,
                     data: KnowledgeInput) -> KnowledgeDocument:
    row = conn.execute("SELECT source_uri, metadata FROM knowledge_base WHERE id = %s FOR UPDATE",
                       (_uuid(document_id),)).fetchone()
    if row is None:
        raise NotFound(f"knowledge document {document_id} does not exist")
    kept = {key: value for key, value in (row[1] or {}).items() if key in SERVER_METADATA_KEYS}
    save_document(conn, embedder, row[0], data, server_metadata=kept)
    return get_document(conn, document_id)


def get_document(conn: psycopg.Connection, document_id: str | uuid.UUID) -> KnowledgeDocument:
    row = conn.execute(f"{_SELECT} WHERE k.id = %s", (_uuid(document_id),)).fetchone()
    if row is None:
        raise NotFound(f"knowledge document {document_id} does not exist")
    return _document(row)


def list_documents(conn: psycopg.Connection, *, limit: int, cursor: str | None = None, sort: str = "title",
                   category: str | None = None, title: str | None = None) -> Page[KnowledgeSummary]:
    page = keyset(sort, SORT_KEYS, limit=limit, cursor=cursor, id_column="k.id")
    clauses, params = [], []
    if category:
        clauses.append("k.category = %s")
        params.append(category.strip().lower())
    if title:
        clauses.append("k.title ILIKE %s")
        params.append("%" + title.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if page.where:
        clauses.append(page.where)
        params += page.params
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"{_SELECT} {where} {page.order_limit}", params).fetchall()
    items = [KnowledgeSummary(**_document(r).model_dump(exclude={"content", "metadata", "content_hash"})) for r in rows]
    sort_value = {"title": lambda d: d.title or d.source_uri, "created_at": lambda d: d.created_at,
                  "updated_at": lambda d: d.updated_at}[sort.lstrip("-")]
    return page.page(items, sort_value, lambda d: d.id)


def delete_document(conn: psycopg.Connection, document_id: str | uuid.UUID) -> dict:
    """The document and its chunks. Proposals that cited its chunks keep their text; `chunks_exist`
    reports the citations as gone."""
    row = conn.execute("DELETE FROM knowledge_base WHERE id = %s RETURNING source_uri, chunk_count",
                       (_uuid(document_id),)).fetchone()
    if row is None:
        raise NotFound(f"knowledge document {document_id} does not exist")
    return {"id": str(document_id), "source_uri": row[0], "chunks_deleted": row[1]}


def set_original(conn: psycopg.Connection, document_id: str | uuid.UUID, original: dict) -> None:
    """Record where an uploaded document's original file is kept (metadata.original)."""
    conn.execute("UPDATE knowledge_base SET metadata = metadata || jsonb_build_object('original', %s::jsonb) "
                 "WHERE id = %s", (Jsonb(original), _uuid(document_id)))


def _uuid(value: str | uuid.UUID) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"knowledge document {value!r} does not exist (not a document id)") from None
