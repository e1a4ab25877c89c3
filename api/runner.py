"""Starting flow runs and reporting on them (the PrefectHQ background-tasks pattern).

The API only starts work and reports on it:
- `DeploymentLauncher` (PREFECT_API_URL set): `run_deployment("<flow>/<flow>", timeout=0)` creates a
  run of the flow's deployment; a worker (or `proposalflow serve`) executes it.
- `InProcessLauncher` (no Prefect API, or PROPOSALFLOW_FLOW_RUNNER=in-process): creates the flow run
  in Prefect first (so it has an id and shows in the UI), then executes it on a small thread pool of
  this process; the outcome is written to `api_flow_runs`.

Either way the run's live state is read back from Prefect and mapped to a small set a client
understands: queued, running, completed, failed, cancelled, paused.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from proposalflow import runs
from proposalflow.errors import ConfigurationError, IntegrationFailed, ProposalflowError

from .triggers import FlowTrigger

log = logging.getLogger("proposalflow.api.runs")

RunState = Literal["queued", "running", "completed", "failed", "cancelled", "paused"]
STATE_OF: dict[str, RunState] = {
    "SCHEDULED": "queued", "PENDING": "queued", "RUNNING": "running", "COMPLETED": "completed",
    "FAILED": "failed", "CRASHED": "failed", "CANCELLED": "cancelled", "CANCELLING": "cancelled",
    "PAUSED": "paused",
}
FINAL_STATES = frozenset({"completed", "failed", "cancelled"})


class RunLinks(BaseModel):
    self: str
    events: str = Field(description="WebSocket: state changes as they happen")


class RunStatus(BaseModel):
    id: uuid.UUID
    flow: str
    mode: Literal["deployment", "in-process"]
    state: RunState
    prefect_state: str | None = Field(None, description="Prefect's state name, e.g. Crashed, AwaitingRetry")
    message: str | None = None
    name: str | None = Field(None, description="Prefect's name for the run")
    parameters: dict[str, Any]
    requested_by: uuid.UUID | None
    requested_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    result: Any = Field(None, description="The flow's summary (its return value), once completed")
    error: str | None = None
    links: RunLinks

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


class RunAccepted(BaseModel):
    id: uuid.UUID
    flow: str
    mode: Literal["deployment", "in-process"]
    state: RunState
    links: RunLinks


def links_for(run_id: uuid.UUID) -> RunLinks:
    return RunLinks(self=f"/api/runs/{run_id}", events=f"/api/runs/{run_id}/events")


def _prefect_env() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


class DeploymentLauncher:
    mode = "deployment"

    def __init__(self, api_url: str | None):
        self.api_url = api_url

    def start(self, trigger: FlowTrigger, parameters: dict, idempotency_key: str | None = None) -> uuid.UUID:
        _prefect_env()
        import httpx
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

        try:
            flow_run = run_deployment(trigger.deployment, parameters=parameters, timeout=0, as_subflow=False,
                                      idempotency_key=idempotency_key, tags=["api"])
        except ObjectNotFound:
            raise ConfigurationError(
                f"the Prefect server at {self.api_url} has no deployment {trigger.deployment}: "
                "run `prefect deploy --all` from the repository (or `proposalflow serve`)") from None
        except (PrefectHTTPStatusError, httpx.HTTPError, OSError) as exc:
            raise IntegrationFailed(f"the Prefect API at {self.api_url} did not accept the run: {exc}") from exc
        return flow_run.id

    def close(self) -> None:
        pass


class InProcessLauncher:
    mode = "in-process"

    def __init__(self, services, max_workers: int = 2):
        self.services = services
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="flow-run")
        self._running: set[uuid.UUID] = set()
        self._lock = threading.Lock()

    def start(self, trigger: FlowTrigger, parameters: dict, idempotency_key: str | None = None) -> uuid.UUID:
        _prefect_env()
        from prefect.client.orchestration import get_client

        flow = trigger.load()
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.create_flow_run(flow, parameters=parameters, tags=["api", "in-process"])
        except Exception as exc:  # noqa: BLE001 - the Prefect API (ephemeral or not) is unreachable
            raise IntegrationFailed(f"could not create the flow run in Prefect: {exc}") from exc
        with self._lock:
            self._running.add(flow_run.id)
        self._executor.submit(self._execute, trigger, flow, flow_run, parameters)
        return flow_run.id

    def _execute(self, trigger: FlowTrigger, flow, flow_run, parameters: dict) -> None:
        from prefect.flow_engine import run_flow

        state_name, result, error = "Crashed", None, None
        try:
            state = run_flow(flow, flow_run=flow_run, parameters=parameters, return_type="state")
            state_name = state.name
            outcome = state.result(raise_on_failure=False)
            if state.is_completed():
                result = outcome
            else:
                error = _describe(outcome) if isinstance(outcome, BaseException) else (state.message or state.name)
        except BaseException as exc:  # noqa: BLE001 - a crash of the engine itself is still an outcome
            error = _describe(exc)
            log.exception("in-process run %s of %s crashed", flow_run.id, trigger.name)
        finally:
            try:
                with self.services.pool.connection() as conn:
                    runs.record_outcome(conn, flow_run.id, state_name, result=result, error=error, flow=trigger.name)
            except Exception:  # noqa: BLE001
                log.exception("could not record the outcome of run %s", flow_run.id)
            with self._lock:
                self._running.discard(flow_run.id)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def close(self) -> None:
        # runs in flight finish (a killed process leaves them for Prefect to mark crashed)
        self._executor.shutdown(wait=True, cancel_futures=False)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProposalflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def temporary_prefect_servers() -> set[int]:
    """Prefect's temporary servers (`SubprocessASGIServer`, a `uvicorn prefect.server.api.server` child)
    in this process, by id; empty while Prefect is not imported (nothing is imported for this)."""
    module = sys.modules.get("prefect.server.api.server")
    if module is None:
        return set()
    return {id(server) for server in getattr(module.SubprocessASGIServer, "_instances", {}).values()}


def stop_temporary_prefect_servers(keep: set[int]) -> None:
    """Stop the temporary Prefect servers started since `keep` was taken (Prefect starts one for
    in-process runs without PREFECT_API_URL). Prefect stops it at exit — but uvicorn re-raises SIGTERM
    after a graceful shutdown, so the process dies by the signal, atexit never runs, and the server
    would be left running as an orphan."""
    module = sys.modules.get("prefect.server.api.server")
    if module is None:
        return
    for server in list(getattr(module.SubprocessASGIServer, "_instances", {}).values()):
        if id(server) not in keep:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - shutting down: log and go on
                log.exception("could not stop Prefect's temporary server")


def make_launcher(services):
    if services.settings.runs_flows_in_process:
        return InProcessLauncher(services)
    return DeploymentLauncher(services.settings.prefect_api_url)


def read_status(request: runs.RunRequest, *, conn=None) -> RunStatus:
    """The run as Prefect sees it, with what the API recorded (parameters, requester, result)."""
    _prefect_env()
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    flow_run = None
    try:
        with get_client(sync_client=True) as client:
            flow_run = client.read_flow_run(request.flow_run_id)
    except ObjectNotFound:
        pass
    except Exception as exc:  # noqa: BLE001
        raise IntegrationFailed(f"the Prefect API did not answer for run {request.flow_run_id}: {exc}") from exc

    result, error = request.result, request.error
    if flow_run is None:  # Prefect forgot it (retention) — report what we recorded
        state = STATE_OF.get((request.state or "").upper(), "failed" if request.error else "queued")
        return RunStatus(id=request.flow_run_id, flow=request.flow, mode=request.mode, state=state,
                         prefect_state=request.state, parameters=request.parameters,
                         requested_by=request.requested_by, requested_at=request.requested_at,
                         ended_at=request.finished_at, result=result, error=error,
                         links=links_for(request.flow_run_id))
    state_type = flow_run.state_type.value if flow_run.state_type else "PENDING"
    state = STATE_OF.get(state_type, "queued")
    message = flow_run.state.message if flow_run.state else None
    if (state in FINAL_STATES and request.mode == "in-process" and request.state is None
            and _recently(flow_run.end_time)):
        # Prefect has its end, this process is still recording the outcome (the result): not done yet
        state, prefect_state, message = "running", "Running", "finishing: recording the result"
    else:
        prefect_state = flow_run.state_name
    if state == "completed" and result is None and request.mode == "deployment":
        result = _persisted_result(flow_run)
        if result is not None and conn is not None:
            runs.record_outcome(conn, request.flow_run_id, flow_run.state_name or "Completed", result=result,
                                flow=request.flow, mode=request.mode)
    if state == "failed" and error is None:
        error = message
    duration = flow_run.total_run_time.total_seconds() if flow_run.total_run_time else None
    return RunStatus(
        id=request.flow_run_id, flow=request.flow, mode=request.mode, state=state,
        prefect_state=prefect_state, message=message, name=flow_run.name,
        parameters=request.parameters, requested_by=request.requested_by, requested_at=request.requested_at,
        started_at=flow_run.start_time, ended_at=flow_run.end_time,
        duration_seconds=duration if state in FINAL_STATES or state == "running" else None,
        result=result, error=error, links=links_for(request.flow_run_id),
    )


def _recently(moment: datetime | None, seconds: float = 60.0) -> bool:
    """An in-process run records its outcome right after Prefect's end; long after, it never will (killed)."""
    if moment is None:
        return True
    from datetime import timezone

    return (datetime.now(timezone.utc) - moment).total_seconds() < seconds


def _persisted_result(flow_run) -> Any:
    """A deployment run's return value, when its worker persisted it where this process can read it."""
    try:
        value = flow_run.state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - not persisted, or stored where this process cannot reach
        return None
    if isinstance(value, BaseException):
        return None
    try:
        import json

        json.dumps(value, default=str)
    except (TypeError, ValueError):
        return None
    return value
