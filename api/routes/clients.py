"""/api/clients — the agency's clients."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from proposalflow.clients import crud
from proposalflow.clients.crud import Client, ClientInput
from proposalflow.errors import PermissionDenied
from proposalflow.pagination import clamp_limit

from ..deps import AuditDep, ConnDep, EditorUser, SettingsDep, ViewerUser
from ..errors import responses
from ..models import Deleted, Page
from ..paging import CursorParam, LimitParam, page_response

router = APIRouter(prefix="/api/clients", tags=["clients"], responses=responses(401, 403, 422, 429))

ClientSort = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]


@router.post("", status_code=201, response_model=Client, responses=responses(409))
def create_client(body: ClientInput, conn: ConnDep, user: EditorUser, audit: AuditDep, response: Response) -> Client:
    """Create a client. Normalised and validated like an ingested row; 409 if its natural key
    (website domain, else external id, else name) is taken."""
    client = crud.create_client(conn, body)
    audit.write(conn, "create", "clients", client.id, name=client.name, natural_key=client.natural_key)
    response.headers["Location"] = f"/api/clients/{client.id}"
    return client


@router.get("", response_model=Page[Client])
def list_clients(
    request: Request, response: Response, conn: ConnDep, user: ViewerUser, settings: SettingsDep,
    limit: LimitParam = None, cursor: CursorParam = None, sort: ClientSort = "name",
    name: Annotated[str | None, Query(max_length=200, description="Case-insensitive part of the name")] = None,
    domain: Annotated[str | None, Query(max_length=300, description="Website domain (or URL), exact")] = None,
    enrichment: Annotated[crud.EnrichmentFilter | None, Query(description="Enriched or not yet")] = None,
) -> Page[Client]:
    page = crud.list_clients(conn, limit=clamp_limit(limit, 50, settings.api_page_max), cursor=cursor, sort=sort,
                             name=name, domain=domain, enrichment=enrichment)
    return page_response(request, response, page)


@router.get("/{client_id}", response_model=Client, responses=responses(404))
def get_client(client_id: uuid.UUID, conn: ConnDep, user: ViewerUser) -> Client:
    return crud.get_client(conn, client_id)


@router.put("/{client_id}", response_model=Client, responses=responses(404, 409))
def replace_client(client_id: uuid.UUID, body: ClientInput, conn: ConnDep, user: EditorUser, audit: AuditDep) -> Client:
    """Replace what a person may set (fields left out become empty); validated like create."""
    client = crud.replace_client(conn, client_id, body)
    audit.write(conn, "update", "clients", client.id, fields=sorted(body.model_fields_set))
    return client


@router.delete("/{client_id}", response_model=Deleted, responses=responses(404, 409))
def delete_client(
    client_id: uuid.UUID, conn: ConnDep, user: EditorUser, audit: AuditDep,
    cascade: Annotated[bool, Query(description="Also delete the client's proposals (admins only)")] = False,
) -> Deleted:
    """409 if the client has proposals, unless an admin asks for `cascade=true`."""
    if cascade and user.role != "admin":
        raise PermissionDenied("deleting a client together with its proposals (cascade) needs the admin role")
    outcome = crud.delete_client(conn, client_id, cascade=cascade)
    audit.write(conn, "delete", "clients", client_id, cascade=cascade, proposals_deleted=outcome["proposals_deleted"])
    return Deleted(id=str(client_id), proposals_deleted=outcome["proposals_deleted"])
