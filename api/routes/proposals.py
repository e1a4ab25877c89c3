"""/api/proposals — proposals, their status machine and the conversation that revises them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from proposalflow.database import connect_url
from proposalflow.inputs import Input
from proposalflow.pagination import clamp_limit
from proposalflow.proposals import crud, service
from proposalflow.proposals.crud import ProposalCreate, ProposalSummary, ProposalUpdate
from proposalflow.proposals.schema import ProposalRecord
from proposalflow.proposals.service import RevisionResult
from proposalflow.proposals.status import ProposalStatus, allowed_next, transition

from ..deps import AuditDep, ConnDep, EditorUser, ServicesDep, SettingsDep, TriggerLimit, ViewerUser
from ..errors import responses
from ..models import Deleted, Page
from ..paging import CursorParam, LimitParam, page_response

router = APIRouter(prefix="/api/proposals", tags=["proposals"], responses=responses(401, 403, 422, 429))

StatusName = Literal[tuple(s.value for s in ProposalStatus)]  # type: ignore[valid-type]


class StatusRequest(Input):
    status: StatusName
    note: str | None = Field(None, max_length=2000)


class StatusResult(BaseModel):
    from_status: str
    to_status: str
    changed: bool
    allowed_next: list[str]
    proposal: ProposalSummary


class RevisionRequest(Input):
    instruction: str = Field(min_length=1, max_length=10_000, description="What to change, in plain words")


class Revision(BaseModel):
    revision: RevisionResult
    proposal: ProposalRecord


class Version(BaseModel):
    version: int
    kind: str
    title: str
    instruction: str | None
    diff_summary: str | None
    flow_run_id: str | None
    created_at: datetime


class Message(BaseModel):
    role: str
    content: str
    version: int | None
    created_at: datetime


@router.post("", status_code=201, response_model=ProposalSummary)
def create_proposal(body: ProposalCreate, response: Response, conn: ConnDep, user: EditorUser,
                    audit: AuditDep) -> ProposalSummary:
    """An empty draft for a client; write its first version with the generate-proposal flow
    (`POST /api/flows/generate-proposal/runs` with this `proposal_id`)."""
    proposal = crud.create_proposal(conn, body)
    audit.write(conn, "create", "proposals", proposal.id, client_id=str(proposal.client_id))
    response.headers["Location"] = f"/api/proposals/{proposal.id}"
    return proposal


@router.get("", response_model=Page[ProposalSummary])
def list_proposals(
    request: Request, response: Response, conn: ConnDep, user: ViewerUser, settings: SettingsDep,
    limit: LimitParam = None, cursor: CursorParam = None, sort: crud.ProposalSort = "-updated_at",
    client_id: uuid.UUID | None = None, status: StatusName | None = None,
) -> Page[ProposalSummary]:
    page = crud.list_proposals(conn, limit=clamp_limit(limit, 50, settings.api_page_max), cursor=cursor, sort=sort,
                               client_id=client_id, status=status)
    return page_response(request, response, page)


@router.get("/{proposal_id}", response_model=ProposalRecord, responses=responses(404))
def get_proposal(proposal_id: uuid.UUID, conn: ConnDep, user: ViewerUser,
                 version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None) -> ProposalRecord:
    """The proposal with its current content (sections, citations, references), or one version's."""
    return service.get(conn, str(proposal_id), version)


@router.put("/{proposal_id}", response_model=ProposalSummary, responses=responses(404))
def update_proposal(proposal_id: uuid.UUID, body: ProposalUpdate, conn: ConnDep, user: EditorUser,
                    audit: AuditDep) -> ProposalSummary:
    """Title and generation inputs. Content changes through /revise, status through /status."""
    proposal = crud.update_proposal(conn, proposal_id, body)
    audit.write(conn, "update", "proposals", proposal_id, fields=sorted(body.model_fields_set))
    return proposal


@router.delete("/{proposal_id}", response_model=Deleted, responses=responses(404, 409))
def delete_proposal(proposal_id: uuid.UUID, conn: ConnDep, user: EditorUser, audit: AuditDep) -> Deleted:
    crud.delete_proposal(conn, proposal_id)
    audit.write(conn, "delete", "proposals", proposal_id)
    return Deleted(id=str(proposal_id))


@router.post("/{proposal_id}/status", response_model=StatusResult, responses=responses(404, 409))
def change_status(proposal_id: uuid.UUID, body: StatusRequest, conn: ConnDep, user: EditorUser,
                  audit: AuditDep) -> StatusResult:
    """Move the proposal through its status machine (409 names the moves allowed from where it is)."""
    change = transition(conn, str(proposal_id), body.status, actor=user.email, note=body.note)
    changed = change.from_status != change.to_status
    if changed:
        audit.write(conn, "status", "proposals", proposal_id, before=change.from_status, after=change.to_status,
                    note=body.note)
    return StatusResult(from_status=change.from_status, to_status=change.to_status, changed=changed,
                        allowed_next=allowed_next(change.to_status), proposal=crud.get_summary(conn, proposal_id))


@router.post("/{proposal_id}/revise", response_model=Revision, responses=responses(404, 409, 502))
def revise_proposal(proposal_id: uuid.UUID, body: RevisionRequest, conn: ConnDep, user: EditorUser,
                    _limit: TriggerLimit, services: ServicesDep, audit: AuditDep) -> Revision:
    """One conversation turn: the instruction rewrites what it concerns and saves a new version
    (the proposal returns to draft). Answers when the new version is saved."""
    # like the CLI and the flows: revise commits each step it saves, on its own autocommit connection
    with connect_url(services.database_url, autocommit=True) as revise_conn:
        result = service.revise(revise_conn, str(proposal_id), body.instruction, settings=services.settings)
    audit.write(conn, "revise", "proposals", proposal_id, version=result.version, instruction=body.instruction[:500])
    return Revision(revision=result, proposal=service.get(conn, str(proposal_id)))


@router.get("/{proposal_id}/versions", response_model=list[Version], responses=responses(404))
def list_versions(proposal_id: uuid.UUID, conn: ConnDep, user: ViewerUser) -> list[Version]:
    return [Version(**v) for v in service.versions(conn, str(proposal_id))]


@router.get("/{proposal_id}/messages", response_model=list[Message], responses=responses(404))
def list_messages(proposal_id: uuid.UUID, conn: ConnDep, user: ViewerUser) -> list[Message]:
    """The conversation about the proposal, oldest first."""
    return [Message(**m) for m in service.conversation(conn, str(proposal_id))]
