"""Running a Prefect flow from the command line.

With PREFECT_API_URL set, the run is recorded by that server (and shows in its UI); without it
Prefect starts its local temporary server for this process (about 10 s). Prefect is imported
here, lazily, so commands that run no flow start fast.
"""

from __future__ import annotations

import importlib
import logging
import os
from typing import Any

from ..errors import ProposalflowError


def run_flow(module: str, name: str, **parameters: Any) -> Any:
    """Import flows.<module>.<name> and run it in this process; re-raise the core's errors."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    flow = getattr(importlib.import_module(f"flows.{module}"), name)
    from ..logging import capture_prefect_run_logs

    capture_prefect_run_logs()  # the run's log lines also go to the CLI's JSON log
    state = flow(**parameters, return_state=True)
    logging.getLogger("proposalflow.cli").info("flow run %s", state.name, extra={
        "flow": name, "flow_run_id": str(state.state_details.flow_run_id), "state": state.name})
    if state.is_completed():
        return state.result()
    try:
        state.result(raise_on_failure=True)
    except ProposalflowError:
        raise
    except Exception as exc:  # noqa: BLE001 - everything else is reported as a failed run
        raise FlowRunFailed(f"flow run {state.name.lower()}: {type(exc).__name__}: {exc}") from exc
    raise FlowRunFailed(f"flow run ended {state.name}")


class FlowRunFailed(ProposalflowError):
    kind = "system"
