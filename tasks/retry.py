"""Which failures are worth a retry: transient database and network trouble, not bad input."""

from __future__ import annotations

import psycopg

from proposalflow.errors import IntegrationFailed, ProposalflowError

TRANSIENT_DB_ERRORS = (
    psycopg.OperationalError,  # connection lost, server restarting
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, IntegrationFailed):
        return True
    if isinstance(exc, ProposalflowError):
        return False  # the user's input or configuration: retrying gives the same answer
    return isinstance(exc, TRANSIENT_DB_ERRORS)


def retry_on_transient(task, task_run, state) -> bool:
    """A Prefect `retry_condition_fn`."""
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we classify whatever the task raised
        return is_transient(exc)
    return False
