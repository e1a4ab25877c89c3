"""The FastAPI application: `create_app(settings)`; `app` is the one uvicorn serves (`api.main:app`).

Thin by design: every route reads and writes through the core (proposalflow/…), and flows are
started through Prefect (a deployment run, or the in-process runner), never run in the request.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from starlette.middleware.gzip import GZipMiddleware

from proposalflow import __version__
from proposalflow.logging import RequestLogMiddleware, configure_logging
from proposalflow.settings import Settings, get_settings

from . import errors
from .deps import reject_unknown_query
from .middleware import BodySizeLimit, RequestContext
from .routes import ROUTERS
from .services import Services

log = logging.getLogger("proposalflow.api")

DESCRIPTION = """\
The proposalflow back office over HTTP: clients, knowledge, proposals, flow runs.

Authenticate with a Supabase access token (`Authorization: Bearer <JWT>`); for local development
mint one with `proposalflow token --email you@example.com --role editor`. Viewers read, editors
write and start flows, admins also manage users and cascade deletes.

Every error is `application/problem+json` (RFC 9457) with a stable `type` URI under
`https://proposalflow.dev/problems/`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    if settings is None:
        from blocks.resolve import apply_configured_blocks

        apply_configured_blocks()  # PROPOSALFLOW_*_BLOCK: settings from Prefect blocks (no Prefect import without)
        settings = get_settings()
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from starlette.concurrency import run_in_threadpool

        try:
            configure_logging("api", stderr=True)
        except OSError as exc:  # an unwritable log folder must not stop the service
            log.warning("cannot write the API log: %s", exc)
        try:
            await run_in_threadpool(lambda: services.pool)  # migrate and connect now, not on the first request
        except Exception as exc:  # noqa: BLE001 - /readyz reports it; requests answer 503 until it works
            log.warning("database not ready at start-up: %s", exc)
        from .runner import stop_temporary_prefect_servers, temporary_prefect_servers

        before = temporary_prefect_servers()
        yield
        await run_in_threadpool(services.close)  # in-process runs finish first
        await run_in_threadpool(stop_temporary_prefect_servers, before)

    app = FastAPI(title="proposalflow", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  swagger_ui_parameters={"persistAuthorization": True},
                  dependencies=[Depends(reject_unknown_query)])
    app.state.services = services
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)

    # outermost last: request id + metrics see everything, then CORS, gzip and the size limit
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes,
                       upload_max_bytes=settings.upload_max_bytes, upload_suffixes=("/upload",))
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["Location", "Link", "Retry-After", "X-Request-ID"], max_age=600)
    app.add_middleware(RequestContext, services=services)
    app.add_middleware(RequestLogMiddleware)  # one JSON access line per request, X-Request-ID

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            app.openapi_schema = errors.problem_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi
    return app


app = create_app()
