"""Dependencies as named types: a route's signature says what it needs and who may call it.

    def create_client(body: ClientInput, conn: ConnDep, user: EditorUser, audit: AuditDep) -> Client

- `ConnDep`: a pooled connection in a transaction that commits when the route returns (before the
  response is sent) and rolls back if it raises; only for authenticated callers (see `get_conn`).
- `CurrentUser`: the verified caller (401 without a valid bearer token), upserted into `users`.
- `ViewerUser` / `EditorUser` / `AdminUser`: the caller, if their role is at least that (else 403).
- `TriggerLimit` / `UploadLimit`: the stricter per-user rate limits of flow triggers and uploads.

The cheap ones are `async def`: a sync dependency costs a hop to the thread pool and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Iterator

import psycopg
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from proposalflow import audit
from proposalflow.errors import AuthenticationFailed, PermissionDenied, RateLimited, ValidationFailed
from proposalflow.security import Principal, role_at_least
from proposalflow.settings import Settings
from proposalflow.users import User, upsert_user

from .services import Services

bearer = HTTPBearer(auto_error=False, bearerFormat="JWT", scheme_name="bearerAuth",
                    description="A Supabase access token (or `proposalflow token --email E --role R`)")


async def reject_unknown_query(request: HTTPConnection) -> None:
    """422 for query parameters a route does not declare (a typo like `?limt=5` is not silently ignored),
    and for parameters carrying NUL characters."""
    nul = sorted({name.replace("\x00", "\\u0000")
                  for name, value in [*request.query_params.multi_items(), *request.path_params.items()]
                  if "\x00" in name or "\x00" in str(value)})
    if nul:  # PostgreSQL stores no NUL in text: a 422 naming the parameter, never a database error
        raise ValidationFailed(f"NUL characters in parameter(s): {', '.join(nul)}",
                               [{"field": name, "message": "must not contain NUL (\\u0000) characters"} for name in nul])
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params or request.scope["type"] != "http":
        return
    known = _declared_query_params(route)
    unknown = sorted({name for name in request.query_params.keys() if name not in known})
    if unknown:
        raise ValidationFailed(f"unknown query parameter(s): {', '.join(unknown)}",
                               [{"field": name, "message": "is not a parameter of this route"} for name in unknown])


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _declared_query_params(route) -> frozenset[str]:
    key = id(route)
    if key not in _QUERY_NAMES:
        def names(dependant) -> set[str]:
            found = {p.alias for p in dependant.query_params}
            for sub in dependant.dependencies:
                found |= names(sub)
            return found

        _QUERY_NAMES[key] = frozenset(names(route.dependant))
    return _QUERY_NAMES[key]


async def get_services(request: HTTPConnection) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]




async def get_principal(services: ServicesDep,
                        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    if credentials is None or not credentials.credentials:
        raise AuthenticationFailed("missing bearer token: send Authorization: Bearer <JWT>")
    if services.verifier.may_fetch_keys(credentials.credentials):  # a JWKS fetch must not block the event loop
        return await run_in_threadpool(services.verifier.verify, credentials.credentials)
    return services.verifier.verify(credentials.credentials)  # HS256: microseconds


def authenticate(services: Services, principal: Principal) -> User:
    """The caller's `users` row (upserted on first sight, then cached briefly) — HTTP and WebSocket."""
    user = services.seen_users.get(principal)
    if user is None:
        with services.pool.connection() as conn:
            user = upsert_user(conn, principal)
        services.seen_users.put(principal, user)
    return user


def check_rate(services: Services, limit: str, user: User) -> None:
    allowed, wait = services.limits[limit].hit(str(user.id))
    if not allowed:
        services.metrics.rate_limited.labels(limit).inc()
        rate = services.limits[limit].rate
        raise RateLimited(f"rate limit of {rate.count} requests per {rate.seconds:g} s exceeded "
                          f"({'flow triggers' if limit == 'trigger' else limit + ' requests'}); retry in {wait:.1f} s",
                          retry_after=wait)


async def get_current_user(request: Request, services: ServicesDep,
                           principal: Annotated[Principal, Depends(get_principal)]) -> User:
    user = services.seen_users.get(principal) or await run_in_threadpool(authenticate, services, principal)
    request.state.user = user
    check_rate(services, "default", user)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_conn(services: ServicesDep, _caller: CurrentUser) -> Iterator[psycopg.Connection]:
    """The caller is authenticated first: the user upsert takes (and gives back) a pooled connection
    of its own, and a request must never wait for a second connection while holding one — with
    the pool's connections all held by requests waiting like that, nothing would move."""
    with services.pool.connection() as conn:  # commit on success, rollback on error
        yield conn


ConnDep = Annotated[psycopg.Connection, Depends(get_conn, scope="function")]


def require(role: str):
    async def dependency(user: CurrentUser) -> User:
        if not role_at_least(user.role, role):
            raise PermissionDenied(f"this needs the {role} role or higher; you are {user.role}")
        return user

    dependency.__name__ = f"require_{role}"
    return dependency


ViewerUser = Annotated[User, Depends(require("viewer"))]
EditorUser = Annotated[User, Depends(require("editor"))]
AdminUser = Annotated[User, Depends(require("admin"))]


async def trigger_limit(services: ServicesDep, user: EditorUser) -> None:
    check_rate(services, "trigger", user)


async def upload_limit(services: ServicesDep, user: EditorUser) -> None:
    check_rate(services, "upload", user)


TriggerLimit = Annotated[None, Depends(trigger_limit)]
UploadLimit = Annotated[None, Depends(upload_limit)]


@dataclass
class AuditTrail:
    actor: audit.Actor
    request_id: str | None

    def write(self, conn: psycopg.Connection, action: str, resource: str, resource_id: Any = None,
              **details: Any) -> None:
        audit.record(conn, self.actor, action, resource, resource_id, request_id=self.request_id, details=details)


async def get_audit(request: Request, user: CurrentUser) -> AuditTrail:
    return AuditTrail(audit.Actor(user.id, user.email, user.role), getattr(request.state, "request_id", None))


AuditDep = Annotated[AuditTrail, Depends(get_audit)]
