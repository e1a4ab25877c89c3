"""Prefect events the product emits, so automations can react to what happened.

Every event's resource id is `proposalflow.<kind>.<id>` (kinds: client, proposal, knowledge,
ingestion-run, backup); the flow run and task run that emitted it are attached as related
resources by Prefect. Names in use:

  proposalflow.clients.ingested     proposalflow.ingestion-run.<run id>   (tasks/clients.py)
  proposalflow.client.enriched      proposalflow.client.<client id>
  proposalflow.knowledge.embedded   proposalflow.knowledge.<document id>
  proposalflow.proposal.generated   proposalflow.proposal.<proposal id>
  proposalflow.proposal.delivered   proposalflow.proposal.<proposal id>
  proposalflow.database.backed_up   proposalflow.backup.<file name>        (tasks/backup.py)
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event


def resource_id(kind: str, id: Any) -> str:
    return f"proposalflow.{kind}.{id}"


def emit(event: str, kind: str, id: Any, *, name: str | None = None, payload: dict | None = None,
         related: list[dict[str, str]] | None = None) -> None:
    """Emit `event` about the resource proposalflow.<kind>.<id> (a no-op when events are off)."""
    resource = {"prefect.resource.id": resource_id(kind, id)}
    if name:
        resource["prefect.resource.name"] = name
    emit_event(event=event, resource=resource, payload=payload, related=related)
