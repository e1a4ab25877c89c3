"""Reading the events a flow emitted back from the Prefect server (its real events API)."""

from __future__ import annotations

import time

import httpx


def wait_for_events(api_url: str, event: str, *, resource_id: str | list[str] | None = None, count: int = 1,
                    timeout: float = 60) -> list[dict]:
    """Events named `event` (about `resource_id` — one id or several —, if given) once at least
    `count` have been stored. Name the resources: the session's server holds every test's events."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()  # what this process emitted is sent before we look
    query: dict = {"event": {"name": [event]}}
    if resource_id:
        query["resource"] = {"id": [resource_id] if isinstance(resource_id, str) else list(resource_id)}
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.post(f"{api_url}/events/filter", json={"filter": query, "limit": 50}, timeout=30)
        response.raise_for_status()
        events = response.json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def related_ids(event: dict) -> set[str]:
    return {r["prefect.resource.id"] for r in event.get("related", [])}
