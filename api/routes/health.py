"""/healthz (the process), /readyz (database reachable, migrations current), /metrics (Prometheus)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from proposalflow.database import connect_url
from proposalflow.migrations import pending

from ..deps import ServicesDep
from ..errors import PROBLEM_MEDIA_TYPE, Problem, problem_type, responses

router = APIRouter(tags=["health"], responses=responses(422))
log = logging.getLogger("proposalflow.api.health")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str
    pending_migrations: list[str]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Problem, "description": "Database unreachable or migrations pending"}})
def readyz(services: ServicesDep):
    """Ready to serve: the database answers and every migration in sql/ is applied."""
    try:
        with connect_url(services.database_url, autocommit=True, migrate=False) as conn:
            conn.execute("SELECT 1")
            waiting = pending(conn)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        # the driver's message names the host, port and user: for the log, not for anonymous callers
        log.warning("not ready: database unreachable: %s", str(exc).strip() or type(exc).__name__)
        return _not_ready("database unreachable (the reason is in the server log)",
                          database="unreachable", pending_migrations=[])
    if waiting:
        return _not_ready(f"{len(waiting)} migration(s) not applied: {', '.join(waiting)}",
                          database="ok", pending_migrations=waiting)
    return Readiness(status="ready", database="ok", pending_migrations=[])


def _not_ready(detail: str, **checks) -> JSONResponse:
    body = {"type": problem_type("unavailable"), "title": "Service unavailable", "status": 503,
            "detail": detail, "instance": "/readyz", **checks}
    return JSONResponse(body, status_code=503, media_type=PROBLEM_MEDIA_TYPE, headers={"Retry-After": "5"})


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"}})
def metrics(services: ServicesDep) -> Response:
    """Request counts and latency by route and status, flow triggers, rate-limit refusals."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
