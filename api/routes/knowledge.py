"""/api/knowledge — the agency's knowledge: documents, hybrid search, file uploads."""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, Response, UploadFile
from pydantic import BaseModel, Field

from proposalflow.errors import NotFound
from proposalflow.filestore import safe_name, store_file
from proposalflow.knowledge import crud
from proposalflow.knowledge.crud import KnowledgeDocument, KnowledgeInput, KnowledgeSummary
from proposalflow.knowledge.search import MAX_K, Passage, search
from proposalflow.knowledge.uploads import StoredUpload, document_id_for, upload_source_uri
from proposalflow.pagination import clamp_limit

from ..deps import AuditDep, ConnDep, EditorUser, ServicesDep, SettingsDep, UploadLimit, ViewerUser
from ..errors import responses
from ..models import Page
from ..paging import CursorParam, LimitParam, page_response
from ..runner import RunAccepted, links_for
from ..triggers import EmbedKnowledgeParameters, available_triggers
from .flows import launch

router = APIRouter(prefix="/api/knowledge", tags=["knowledge"], responses=responses(401, 403, 422, 429))

# what an upload may be: suffix → (accepted content types, magic bytes or None for text)
UPLOAD_TYPES: dict[str, tuple[frozenset[str], bytes | None]] = {
    ".md": (frozenset({"text/markdown", "text/x-markdown", "text/plain"}), None),
    ".markdown": (frozenset({"text/markdown", "text/x-markdown", "text/plain"}), None),
    ".txt": (frozenset({"text/plain"}), None),
    ".html": (frozenset({"text/html"}), None),
    ".htm": (frozenset({"text/html"}), None),
    ".pdf": (frozenset({"application/pdf"}), b"%PDF-"),
    ".docx": (frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}), b"PK\x03\x04"),
}
_ANY_BINARY = "application/octet-stream"  # what browsers and curl send when they do not know


class UploadAccepted(RunAccepted):
    """The original is stored; the embed-knowledge run (at `Location`) makes it a searchable document."""
    source_uri: str = Field(description="The document it becomes: upload://<file name>")
    document_id: uuid.UUID | None = Field(None, description="That document's id, if an earlier upload made it")
    original: dict = Field(description="Where the original is kept: uri, key, filename, size, sha256, content_type")


class DeletedDocument(BaseModel):
    id: str
    deleted: bool = True
    source_uri: str
    chunks_deleted: int


@router.get("/search", response_model=list[Passage])
def search_knowledge(
    conn: ConnDep, user: ViewerUser, services: ServicesDep,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="What to look for")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="How many passages")] = 5,
    category: Annotated[str | None, Query(max_length=100)] = None,
) -> list[Passage]:
    """Hybrid retrieval: vector similarity and full-text rank, fused (RRF); best first."""
    return search(conn, services.embedder, q, k=k, category=category.strip().lower() if category else None)


@router.post("/upload", status_code=202, response_model=UploadAccepted, responses=responses(413, 415, 502, 503))
def upload(
    response: Response, conn: ConnDep, user: EditorUser, _limit: UploadLimit, services: ServicesDep, audit: AuditDep,
    file: Annotated[UploadFile, File(description="A .md, .txt, .html, .pdf or .docx file")],
    category: Annotated[str | None, Form(max_length=100)] = None,
    title: Annotated[str | None, Form(max_length=500)] = None,
) -> UploadAccepted:
    """Keep the original in the file store and start an embed-knowledge run that reads, chunks and
    embeds it: 202 with the run (`Location: /api/runs/<id>`); searchable once the run completed. A
    file uploaded again under the same name replaces the earlier version's chunks."""
    filename = file.filename or "upload"
    suffix = Path(filename).suffix.lower()
    if suffix not in UPLOAD_TYPES:
        raise HTTPException(415, f"{filename}: unsupported file type; upload one of {', '.join(sorted(UPLOAD_TYPES))}")
    content_types, magic = UPLOAD_TYPES[suffix]
    content_type = (file.content_type or _ANY_BINARY).split(";")[0].strip().lower()
    stored_type = sorted(content_types)[0]
    if content_type not in content_types and content_type != _ANY_BINARY:
        raise HTTPException(415, f"{filename}: a {suffix} file cannot be {content_type}")
    trigger = available_triggers().get("embed-knowledge")
    if trigger is None:
        raise HTTPException(503, "uploads need the embed-knowledge flow, which is not in this installation")
    limit = services.settings.upload_max_bytes
    scratch = services.settings.home_dir / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        path = Path(folder) / safe_name(filename)
        size = _copy_limited(file, path, limit, filename)
        if size == 0:
            raise HTTPException(422, f"{filename}: the file is empty")
        with path.open("rb") as fh:
            head = fh.read(8192)
        if (magic is not None and not head.startswith(magic)) or (magic is None and b"\x00" in head):
            raise HTTPException(415, f"{filename}: the content is not a {suffix} file")
        stored = store_file(services.file_store, path, filename, stored_type, prefix="knowledge")
    body = EmbedKnowledgeParameters(
        uploads=[StoredUpload(key=stored.key, filename=filename, title=(title or "").strip() or None)],
        category=(category or "").strip().lower() or None)
    run_id = launch(trigger, body, conn=conn, user=user, services=services, audit=audit)
    original = {"uri": stored.uri, "key": stored.key, "filename": filename, "size": stored.size,
                "sha256": stored.sha256, "content_type": stored_type}
    audit.write(conn, "upload", "knowledge", stored.key, filename=filename, size=size, sha256=stored.sha256,
                run=str(run_id))
    response.headers["Location"] = f"/api/runs/{run_id}"
    return UploadAccepted(id=run_id, flow=trigger.name, mode=services.launcher.mode, state="queued",
                          links=links_for(run_id), source_uri=upload_source_uri(filename),
                          document_id=document_id_for(conn, filename), original=original)


def _copy_limited(file: UploadFile, path: Path, limit: int, filename: str) -> int:
    size = 0
    with path.open("wb") as out:
        while chunk := file.file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"{filename}: larger than the {limit:,} byte upload limit")
            out.write(chunk)
    return size


@router.post("", status_code=201, response_model=KnowledgeDocument)
def create_document(body: KnowledgeInput, response: Response, conn: ConnDep, user: EditorUser,
                    services: ServicesDep, audit: AuditDep) -> KnowledgeDocument:
    """Add a document from text; it is chunked and embedded before this returns."""
    document = crud.create_document(conn, services.embedder, body)
    audit.write(conn, "create", "knowledge", document.id, title=document.title, chunks=document.chunk_count)
    response.headers["Location"] = f"/api/knowledge/{document.id}"
    return document


@router.get("", response_model=Page[KnowledgeSummary])
def list_documents(
    request: Request, response: Response, conn: ConnDep, user: ViewerUser, settings: SettingsDep,
    limit: LimitParam = None, cursor: CursorParam = None, sort: crud.KnowledgeSort = "title",
    category: Annotated[str | None, Query(max_length=100)] = None,
    title: Annotated[str | None, Query(max_length=200, description="Case-insensitive part of the title")] = None,
) -> Page[KnowledgeSummary]:
    page = crud.list_documents(conn, limit=clamp_limit(limit, 50, settings.api_page_max), cursor=cursor, sort=sort,
                               category=category, title=title)
    return page_response(request, response, page)


@router.get("/{document_id}", response_model=KnowledgeDocument, responses=responses(404))
def get_document(document_id: uuid.UUID, conn: ConnDep, user: ViewerUser) -> KnowledgeDocument:
    return crud.get_document(conn, document_id)


@router.get("/{document_id}/original", response_class=Response, responses={
    **responses(404, 502), 200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                                 "description": "The uploaded file as it was"}})
def get_original(document_id: uuid.UUID, conn: ConnDep, user: ViewerUser, services: ServicesDep) -> Response:
    """The original of an uploaded document, from the file store."""
    original = crud.get_document(conn, document_id).metadata.get("original")
    if not isinstance(original, dict) or "key" not in original:
        raise NotFound(f"knowledge document {document_id} was not uploaded: it has no stored original")
    data = services.file_store.get(original["key"])
    name = safe_name(original.get("filename") or "original")
    return Response(data, media_type=original.get("content_type") or _ANY_BINARY,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.put("/{document_id}", response_model=KnowledgeDocument, responses=responses(404))
def replace_document(document_id: uuid.UUID, body: KnowledgeInput, conn: ConnDep, user: EditorUser,
                     services: ServicesDep, audit: AuditDep) -> KnowledgeDocument:
    """Replace title, category, content and metadata; the chunks are rebuilt if the words changed."""
    document = crud.replace_document(conn, services.embedder, document_id, body)
    audit.write(conn, "update", "knowledge", document_id, title=document.title, chunks=document.chunk_count)
    return document


@router.delete("/{document_id}", response_model=DeletedDocument, responses=responses(404))
def delete_document(document_id: uuid.UUID, conn: ConnDep, user: EditorUser, audit: AuditDep) -> DeletedDocument:
    outcome = crud.delete_document(conn, document_id)
    audit.write(conn, "delete", "knowledge", document_id, source_uri=outcome["source_uri"])
    return DeletedDocument(**outcome)

