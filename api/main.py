"""The FastAPI application."""

from fastapi import FastAPI

from proposalflow import __version__

app = FastAPI(title="proposalflow", version=__version__)


@app.get("/healthz", tags=["health"])
def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}
