"""Every error as `application/problem+json` (RFC 9457), translated once, here.

The core raises its own error types (proposalflow/errors.py); each `kind` maps to a stable `type`
URI (documented in the README's error reference), a status and a title. Field problems are listed
in `errors` as {field, message}. Nothing internal (stack traces, SQL) reaches a response: an
unexpected error is logged with its request id and answered as a bare 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from proposalflow.errors import ProposalflowError, RateLimited
from proposalflow.ratelimit import retry_after_header

log = logging.getLogger("proposalflow.api")

PROBLEM_BASE = "https://proposalflow.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

# kind → (status, title). The kinds are the core's `ProposalflowError.kind` values plus the HTTP-level ones.
PROBLEMS: dict[str, tuple[int, str]] = {
    "validation": (422, "The request is not valid"),
    "authentication": (401, "Authentication required"),
    "forbidden": (403, "Not allowed for your role"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflict with the current state"),
    "payload-too-large": (413, "Request body too large"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "rate-limited": (429, "Too many requests"),
    "integration": (502, "An external service failed"),
    "configuration": (503, "The service is not configured for this"),
    "unavailable": (503, "Service unavailable"),
    "system": (500, "Internal error"),
}
_STATUS_KINDS = {status: kind for kind, (status, _) in PROBLEMS.items() if kind not in ("configuration", "system")}


def problem_type(kind: str) -> str:
    return PROBLEM_BASE + kind


class FieldProblem(BaseModel):
    field: str = Field(description="Where: a body field (dotted path), query or path parameter")
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(description="Stable URI of the problem type, e.g. " + problem_type("validation"))
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="The request path")
    request_id: str | None = None
    errors: list[FieldProblem] | None = Field(None, description="Per-field problems (validation)")


def problem_response(request: Request | None, kind: str, detail: str | None, *,
                     errors: list[dict] | None = None, status: int | None = None,
                     headers: dict[str, str] | None = None) -> JSONResponse:
    default_status, title = PROBLEMS.get(kind, (status or 500, HTTPStatus(status or 500).phrase))
    status = status or default_status
    body: dict[str, Any] = {
        "type": problem_type(kind) if kind in PROBLEMS else "about:blank",
        "title": title, "status": status, "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        body["request_id"] = getattr(request.state, "request_id", None)
    if errors is not None:
        body["errors"] = errors
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="proposalflow"')
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _field_path(loc: tuple | list) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:] or ["body"]
    elif len(parts) >= 2 and parts[0] in ("query", "path", "header", "cookie"):
        parts = [parts[1], *parts[2:]]
    return ".".join(parts)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for error in exc.errors():
        message = error.get("msg", "invalid")
        if error.get("type") == "extra_forbidden":
            message = "is not a field you can set"
        errors.append({"field": _field_path(error.get("loc", ())), "message": message})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    return problem_response(request, "validation", detail, errors=errors)


async def _core_error(request: Request, exc: ProposalflowError) -> JSONResponse:
    kind = exc.kind if exc.kind in PROBLEMS else "system"
    headers = {}
    if type(exc).__name__ == "DatabaseUnavailable":  # proposalflow.errors: the database refused a connection
        log.error("request %s: %s", getattr(request.state, "request_id", "?"), exc)
        return problem_response(request, "unavailable", "the database is unavailable; try again shortly",
                                headers={"Retry-After": "5"})
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = retry_after_header(exc.retry_after)
    if kind == "system":
        log.error("request %s failed: %s", getattr(request.state, "request_id", "?"), exc, exc_info=exc)
        return problem_response(request, "system", "an internal error occurred; quote the request id when reporting it")
    if kind in ("integration", "configuration"):
        log.warning("request %s: %s", getattr(request.state, "request_id", "?"), exc)
    errors = getattr(exc, "errors", None) if kind == "validation" else None
    return problem_response(request, kind, str(exc), errors=errors or ([] if kind == "validation" else None),
                            headers=headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    kind = _STATUS_KINDS.get(exc.status_code, "")
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    return problem_response(request, kind, detail, status=exc.status_code, headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    import psycopg
    import psycopg_pool

    if isinstance(exc, (psycopg_pool.PoolTimeout, psycopg.OperationalError)):
        log.error("request %s: database unavailable: %s", getattr(request.state, "request_id", "?"), exc)
        return problem_response(request, "unavailable", "the database is unavailable; try again shortly",
                                headers={"Retry-After": "5"})
    log.error("request %s failed", getattr(request.state, "request_id", "?"), exc_info=exc)
    return problem_response(request, "system", "an internal error occurred; quote the request id when reporting it")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ProposalflowError, _core_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a route can answer (problem+json bodies)."""
    described = {401: "Missing or invalid bearer token", 403: "Your role may not do this",
                 404: "No such resource", 409: "Conflicts with the current state",
                 413: "Body too large", 415: "Unsupported media type", 422: "Invalid input",
                 429: "Rate limit exceeded (see Retry-After)", 502: "An external service failed",
                 503: "Not configured, or a dependency is down"}
    return {status: {"model": Problem, "description": described.get(status, HTTPStatus(status).phrase)}
            for status in statuses}


def problem_openapi(schema: dict) -> dict:
    """Error responses are problem+json: rename their media type, and drop FastAPI's own 422 schema."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for status, response in operation.get("responses", {}).items():
                if status.isdigit() and int(status) >= 400:
                    content = response.get("content", {})
                    if "application/json" in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
                    if status == "422":
                        content[PROBLEM_MEDIA_TYPE] = {"schema": {"$ref": "#/components/schemas/Problem"}}
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    return schema
