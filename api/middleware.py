"""ASGI middleware: request ids and metrics, and the request body size limit.

Access logging and the X-Request-ID header come from `proposalflow.logging.RequestLogMiddleware`,
installed outermost; `RequestContext` takes the id it chose (or makes one when used without it).

Pure ASGI (not BaseHTTPMiddleware), so streaming bodies and WebSockets pass through untouched.
"""

from __future__ import annotations

import json
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from proposalflow.logging import request_id_var

from .errors import PROBLEM_MEDIA_TYPE, problem_type
from .services import Services

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestContext:
    """Puts the request id on the request (`request.state.request_id`) and records request count
    and latency by route template and status."""

    def __init__(self, app: ASGIApp, services: Services):
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # RequestLogMiddleware (proposalflow.logging, outermost) already chose the id and echoes it
        request_id = request_id_var.get()
        echo = request_id is None
        if request_id is None:
            given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
            request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if echo:
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            metrics = self.services.metrics
            metrics.requests.labels(method, template, str(status)).inc()
            metrics.latency.labels(method, template).observe(time.perf_counter() - started)


class BodySizeLimit:
    """413 for bodies over the limit — by Content-Length up front, or while a chunked body streams.
    Upload routes (`upload_paths`) get their own, larger limit."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, upload_max_bytes: int, upload_suffixes: tuple[str, ...]):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes
        self.upload_suffixes = upload_suffixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["path"].endswith(self.upload_suffixes)
        # multipart framing adds a little around the file itself
        limit = self.upload_max_bytes + 64 * 1024 if is_upload else self.max_bytes
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _too_large(scope, send, limit)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _too_large(scope, send, limit)


class _BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it as is and the problem handler answers 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the {limit:,} byte limit")


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    state = scope.get("state") or {}
    body = json.dumps({
        "type": problem_type("payload-too-large"), "title": "Request body too large", "status": 413,
        "detail": f"the request body is larger than the {limit:,} byte limit", "instance": scope.get("path"),
        "request_id": state.get("request_id"),
    }).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
