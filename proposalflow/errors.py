"""Errors a user can cause or meet. The CLI and the API translate them once, at their edge."""

from __future__ import annotations


class ProposalflowError(Exception):
    """Base class. `kind` is the stable category the API maps to a problem `type` URI."""

    kind = "system"


class ConfigurationError(ProposalflowError):
    """Settings that cannot work (a bad URL, a missing key file)."""

    kind = "configuration"


class ValidationFailed(ProposalflowError):
    """Input that breaks a rule. `errors` lists {field, message} for each problem."""

    kind = "validation"

    def __init__(self, message: str, errors: list[dict] | None = None):
        super().__init__(message)
        self.errors = errors or []


class SourceUnreadable(ValidationFailed):
    """A whole input file (or URL) cannot be read: nothing is written."""


class NotFound(ProposalflowError):
    kind = "not-found"


class Conflict(ProposalflowError):
    kind = "conflict"


class IllegalTransition(Conflict):
    """A proposal status change its status machine does not allow (proposalflow/proposals/status.py)."""

    def __init__(self, message: str, from_status: str | None = None, to_status: str | None = None):
        super().__init__(message)
        self.from_status, self.to_status = from_status, to_status


class EmbeddingModelMismatch(ConfigurationError):
    """The knowledge base was embedded with another model than the settings select; the message
    names `proposalflow kb reembed`."""


class MigrationError(ProposalflowError):
    """A migration failed or an applied migration file was changed."""

    kind = "system"


class BackupFailed(ProposalflowError):
    """pg_dump / pg_restore failed, or a backup file does not verify."""

    kind = "system"


class IntegrationFailed(ProposalflowError):
    """An external service (OpenAI, Jina, Google, Supabase) failed after retries."""

    kind = "integration"


class DatabaseUnavailable(IntegrationFailed):
    """The database did not accept a connection: down, restarting, or a wrong address.
    Transient from a worker's point of view, so tasks retry it."""


class IntegrationRejected(ProposalflowError):
    """An external service refused a request for a reason a retry cannot fix (a 4xx other than 429):
    not an IntegrationFailed, so retry_on_transient leaves it alone."""

    kind = "integration"


class GoogleAuthorizationFailed(ConfigurationError):
    """Google credentials that cannot do the job: revoked or expired (invalid_grant), missing scopes
    (403 insufficientPermissions), a service account without a mailbox. The message says what to do."""


class UnsafeURL(ValidationFailed):
    """A URL the reader refuses to fetch: not http(s), or resolving to a loopback, private,
    link-local or otherwise non-public address (also after a redirect)."""


class FetchFailed(IntegrationFailed):
    """A web page could not be read. `status` is the last HTTP status (None for network errors);
    `fallback_ok` says whether another reader might succeed where this one failed."""

    def __init__(self, message: str, *, url: str, status: int | None = None, fallback_ok: bool = False):
        super().__init__(message)
        self.url = url
        self.status = status
        self.fallback_ok = fallback_ok


class AuthenticationFailed(ProposalflowError):
    """Missing, malformed, expired or wrongly signed credentials (the API answers 401)."""

    kind = "authentication"


class PermissionDenied(ProposalflowError):
    """Valid credentials whose role may not do this (the API answers 403)."""

    kind = "forbidden"


class RateLimited(ProposalflowError):
    """Too many requests; `retry_after` seconds until the next one is allowed (the API answers 429)."""

    kind = "rate-limited"

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = retry_after
