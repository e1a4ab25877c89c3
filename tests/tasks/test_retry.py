"""Which failures the tasks retry: transient database and network trouble, never bad input."""

import psycopg

from proposalflow.errors import ConfigurationError, DatabaseUnavailable, IntegrationFailed, SourceUnreadable
from tasks.retry import is_transient


def test_transient_failures_are_retried_and_bad_input_is_not():
    assert is_transient(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_transient(psycopg.errors.SerializationFailure())
    assert is_transient(psycopg.errors.DeadlockDetected())
    assert is_transient(DatabaseUnavailable("cannot connect to the database: connection refused"))
    assert is_transient(IntegrationFailed("https://example.com/clients.csv: HTTP 503"))
    assert not is_transient(SourceUnreadable("clients.csv: the file is empty"))
    assert not is_transient(ConfigurationError("DATABASE_URL must be a postgresql:// URL"))
    assert not is_transient(psycopg.errors.UniqueViolation())
    assert not is_transient(ValueError("a bug"))
