"""/api/runs — the state of flow runs started through the API, polled or pushed (WebSocket)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from proposalflow import runs
from proposalflow.errors import AuthenticationFailed, ProposalflowError
from proposalflow.pagination import clamp_limit

from ..deps import ConnDep, SettingsDep, ViewerUser, authenticate, check_rate
from ..errors import PROBLEMS, problem_type, responses
from ..models import Page
from ..paging import CursorParam, LimitParam, page_response
from ..runner import RunStatus, read_status

log = logging.getLogger("proposalflow.api.runs")
router = APIRouter(prefix="/api/runs", tags=["runs"], responses=responses(401, 403, 422, 429))

POLL_SECONDS = 0.5
AUTH_TIMEOUT_SECONDS = 10
CLOSE_CODES = {"authentication": 4401, "forbidden": 4403, "not-found": 4404, "rate-limited": 4429}


@router.get("", response_model=Page[RunStatus], responses=responses(502))
def list_runs(request: Request, response: Response, conn: ConnDep, user: ViewerUser, settings: SettingsDep,
              limit: LimitParam = None, cursor: CursorParam = None,
              flow: Annotated[str | None, Query(max_length=100)] = None,
              mine: Annotated[bool, Query(description="Only the runs you started")] = False) -> Page[RunStatus]:
    """Runs started through the API, newest first, with their current state."""
    page = runs.list_requests(conn, limit=clamp_limit(limit, 20, min(settings.api_page_max, 100)), cursor=cursor,
                              flow=flow, requested_by=user.id if mine else None)
    statuses = [read_status(r, conn=conn) for r in page.items]
    return page_response(request, response, type(page)(statuses, page.next_cursor, page.limit, page.sort))


@router.get("/{run_id}", response_model=RunStatus, responses=responses(404, 502))
def get_run(run_id: uuid.UUID, conn: ConnDep, user: ViewerUser) -> RunStatus:
    """State (queued, running, completed, failed, cancelled, paused), timestamps, and the flow's
    result summary once it completed. Only runs started through this API are visible."""
    return read_status(runs.get_request(conn, run_id), conn=conn)


def _current(services, run_id: str) -> tuple[runs.RunRequest, RunStatus]:
    with services.pool.connection() as conn:
        request = runs.get_request(conn, run_id)
        return request, read_status(request, conn=conn)


@router.websocket("/{run_id}/events")
async def run_events(websocket: WebSocket, run_id: str, token: str | None = None) -> None:
    """Pushes `{"event": "state", "run": {…}}` on connect and on every state change, then closes
    (1000) after the final state. Authenticate with `?token=<JWT>` or, first thing after
    connecting, `{"token": "<JWT>"}`. Failures arrive as `{"event": "error", "problem": {…}}`
    followed by a close with 4401, 4403, 4404 or 4429."""
    services = websocket.app.state.services
    await websocket.accept()
    try:
        if not token:
            try:
                first = await asyncio.wait_for(websocket.receive_json(), timeout=AUTH_TIMEOUT_SECONDS)
            except (asyncio.TimeoutError, ValueError, KeyError):
                first = None
            token = first.get("token") if isinstance(first, dict) else None
            if not isinstance(token, str) or not token:
                raise AuthenticationFailed('send {"token": "<JWT>"} first, or connect with ?token=<JWT>')
        principal = await run_in_threadpool(services.verifier.verify, token)
        user = await run_in_threadpool(authenticate, services, principal)
        check_rate(services, "default", user)
        request, status = await run_in_threadpool(_current, services, run_id)
    except WebSocketDisconnect:
        return
    except ProposalflowError as exc:
        await _fail(websocket, exc.kind, str(exc))
        return
    except Exception:  # noqa: BLE001
        log.exception("run events %s: set-up failed", run_id)
        await _fail(websocket, "system", "an internal error occurred")
        return

    last: tuple | None = None
    settle_polls = 10  # an in-process run's result lands in the database just after Prefect's final state
    try:
        while True:
            key = (status.state, status.prefect_state, status.result is not None)
            waiting_for_result = (status.final and request.mode == "in-process" and request.finished_at is None
                                  and settle_polls > 0)
            if key != last and not waiting_for_result:
                await websocket.send_json({"event": "state", "run": status.model_dump(mode="json")})
                last = key
            if status.final and not waiting_for_result:
                await websocket.close(1000)
                return
            settle_polls -= 1 if waiting_for_result else 0
            try:
                message = await asyncio.wait_for(websocket.receive(), timeout=POLL_SECONDS)
                if message["type"] == "websocket.disconnect":
                    return
            except asyncio.TimeoutError:
                pass
            request, status = await run_in_threadpool(_current, services, run_id)
    except WebSocketDisconnect:
        return
    except ProposalflowError as exc:
        await _fail(websocket, exc.kind, str(exc))
    except RuntimeError:  # the client went away between a receive and a send
        return


async def _fail(websocket: WebSocket, kind: str, detail: str) -> None:
    status, title = PROBLEMS.get(kind, PROBLEMS["system"])
    problem: dict[str, Any] = {"type": problem_type(kind if kind in PROBLEMS else "system"), "title": title,
                               "status": status, "detail": detail}
    try:
        await websocket.send_json({"event": "error", "problem": problem})
        await websocket.close(CLOSE_CODES.get(kind, 1011))
    except (RuntimeError, WebSocketDisconnect):
        pass
