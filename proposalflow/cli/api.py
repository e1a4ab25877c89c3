"""`proposalflow api`: serve the FastAPI app with uvicorn."""

from __future__ import annotations

import typer

from .output import err


def serve_api(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes."),
    reload: bool = typer.Option(False, "--reload", help="Restart on code changes (development)."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Start the HTTP API (docs at /docs, OpenAPI at /openapi.json)."""
    import os
    import shutil
    import socket

    import uvicorn

    from ..settings import get_settings

    settings = get_settings()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # /metrics then adds up every worker's counters
        metrics_dir = settings.home_dir / "metrics" / str(os.getpid())
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    mode = "in-process runs" if settings.runs_flows_in_process else f"deployment runs on {settings.prefect_api_url}"
    err.print(f"proposalflow API on http://{host}:{port} (docs: /docs) — flow triggers: {mode}", highlight=False)
    config = uvicorn.Config("api.main:app", host=host, port=port, workers=workers, reload=reload,
                            log_level=log_level, proxy_headers=True, server_header=False,
                            access_log=False)  # the app writes its own JSON access lines
    if workers > 1 and not reload:
        from uvicorn.supervisors import Multiprocess

        # uvicorn binds the shared socket itself (protocol 0), so asyncio does not turn Nagle off on
        # the connections the workers accept: every keep-alive response then waits ~40 ms for a
        # delayed ACK. Linux copies TCP_NODELAY from the listening socket to accepted ones.
        sock = config.bind_socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Multiprocess(config, sockets=[sock]).run()
    else:
        uvicorn.Server(config).run()
