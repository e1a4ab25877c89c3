"""What a delivery target is: the one interface the Google Workspace target and the local
exporters both implement, and the job that travels through the steps of a delivery.

Every `create_*` / `send_*` method is a side effect made once per idempotency key (the service
checks `delivery_steps` before calling it). Every `find_*` method looks the result of an earlier,
unrecorded attempt up by that key — the crash window between "made remotely" and "recorded".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from ..errors import IntegrationRejected
from ..proposals.schema import ProposalContent

STEPS = ("document", "share", "message", "send")


class FolderMissing(IntegrationRejected):
    """The client's remembered folder is gone (deleted or trashed by someone): the service forgets it
    and makes the document in a new one."""


@dataclass(frozen=True)
class DeliveryJob:
    """One proposal version on its way to one target."""

    delivery_id: str
    proposal_id: str
    version: int
    target: str  # "google" | "local"
    send: bool  # send the email (else it stays a draft / an .eml in the outbox)
    client_id: str
    client_name: str
    recipient: str
    contact_name: str | None
    drive_folder_id: str | None  # what the client remembers (Google)
    content: ProposalContent
    already_delivered: bool = False
    previous: dict = field(default_factory=dict)  # the stored report of a completed delivery

    @property
    def title(self) -> str:
        return self.content.title

    def key(self, step: str) -> str:
        """The idempotency key of one side effect: (proposal, version, target, step)."""
        return f"proposal:{self.proposal_id}:v{self.version}:{self.target}:{step}"


class DeliveryTarget(Protocol):
    name: str  # "google" | "local"
    remembers_folder: bool  # True: the client's folder id is kept in clients.drive_folder_id

    def find_client_folder(self, job: DeliveryJob) -> dict | None: ...

    def create_client_folder(self, job: DeliveryJob) -> dict: ...

    def find_document(self, job: DeliveryJob, key: str) -> dict | None: ...

    def create_document(self, job: DeliveryJob, folder: dict, key: str) -> dict:
        """→ {"id", "link", ...}: the document, made in the client's folder."""

    def share_document(self, job: DeliveryJob, document: dict, addresses: list[str], role: str) -> dict: ...

    def find_message(self, job: DeliveryJob, key: str, message_id: str) -> dict | None: ...

    def create_message(self, job: DeliveryJob, message: EmailMessage, document: dict) -> dict:
        """→ a draft (Gmail) or an .eml in the outbox (local); never sends."""

    def find_sent(self, job: DeliveryJob, message: dict) -> dict | None:
        """After an unrecorded send attempt: {"...": ...} if it went out, None if it surely did not.
        Raises when that cannot be known (SMTP): a second send is worse than none."""

    def send_message(self, job: DeliveryJob, message: dict) -> dict: ...
