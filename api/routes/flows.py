"""/api/flows — start flow runs: POST /api/flows/<flow>/runs → 202 + Location: /api/runs/<id>.

One route per flow (generated from api/triggers.py), so each flow's parameters are typed in OpenAPI.
"""
# no `from __future__ import annotations`: the generated routes' annotations are real types

import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel

from proposalflow import runs
from proposalflow.errors import ValidationFailed

from ..deps import AuditDep, ConnDep, EditorUser, ServicesDep, TriggerLimit, ViewerUser
from ..errors import responses
from ..runner import RunAccepted, links_for
from ..triggers import FlowTrigger, available_triggers

router = APIRouter(prefix="/api/flows", tags=["flows"], responses=responses(401, 403, 422, 429))

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


class FlowInfo(BaseModel):
    name: str
    summary: str
    deployment: str
    start: str
    parameters: dict[str, Any]


@router.get("", response_model=list[FlowInfo])
def list_flows(user: ViewerUser) -> list[FlowInfo]:
    """The flows this API can start, with the JSON Schema of their parameters."""
    return [FlowInfo(name=t.name, summary=t.summary, deployment=t.deployment, start=f"/api/flows/{t.name}/runs",
                     parameters=t.parameters.model_json_schema()) for t in available_triggers().values()]


def launch(trigger: FlowTrigger, body, *, conn, user, services, audit, idempotency_key: str | None = None) -> uuid.UUID:
    """Check, start (through the deployment or in-process launcher), record, audit, count: the run's id."""
    if trigger.check is not None:
        trigger.check(conn, services.settings, body)
    parameters = trigger.flow_parameters(services.settings, body)
    launcher = services.launcher
    # Prefect's own key (deployment runs) is per user too: two users' "retry-1" are two runs
    run_id = launcher.start(trigger, parameters, f"{user.id}:{idempotency_key}" if idempotency_key else None)
    runs.record_request(conn, run_id, trigger.name, launcher.mode, parameters, requested_by=user.id,
                        request_id=audit.request_id, idempotency_key=idempotency_key)
    audit.write(conn, "trigger", "runs", run_id, flow=trigger.name, mode=launcher.mode, parameters=parameters)
    services.metrics.triggers.labels(trigger.name, launcher.mode).inc()
    return run_id


def _trigger_route(trigger: FlowTrigger):
    def start_run(
        body, conn: ConnDep, user: EditorUser, _limit: TriggerLimit, services: ServicesDep, audit: AuditDep,
        response: Response,
        idempotency_key: Annotated[str | None, Header(description="Retrying with the same key returns the same run")] = None,
    ) -> RunAccepted:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise ValidationFailed("Idempotency-Key must be 1-200 visible ASCII characters",
                                   [{"field": "Idempotency-Key", "message": "invalid"}])
        if idempotency_key:  # lookup, start and record under one lock: concurrent retries see one run
            runs.lock_idempotency_key(conn, user.id, idempotency_key)
            earlier = runs.find_by_idempotency_key(conn, user.id, idempotency_key)
            if earlier is not None:
                response.headers["Location"] = f"/api/runs/{earlier.flow_run_id}"
                response.headers["Idempotent-Replayed"] = "true"
                return RunAccepted(id=earlier.flow_run_id, flow=earlier.flow, mode=earlier.mode, state="queued",
                                   links=links_for(earlier.flow_run_id))
        run_id = launch(trigger, body, conn=conn, user=user, services=services, audit=audit,
                        idempotency_key=idempotency_key)
        response.headers["Location"] = f"/api/runs/{run_id}"
        return RunAccepted(id=run_id, flow=trigger.name, mode=services.launcher.mode, state="queued",
                           links=links_for(run_id))

    start_run.__annotations__["body"] = trigger.parameters
    start_run.__name__ = "start_" + trigger.name.replace("-", "_")
    return start_run


for _trigger in available_triggers().values():
    router.add_api_route(
        f"/{_trigger.name}/runs", _trigger_route(_trigger), methods=["POST"], status_code=202,
        response_model=RunAccepted, summary=f"Start {_trigger.name}", description=(
            f"{_trigger.summary}. Answers 202 at once with the run id; follow it at `Location` "
            "(GET) or over the WebSocket at `links.events`."),
        responses=responses(502, 503),
    )
