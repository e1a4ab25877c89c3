"""The local exporters — the default target with no Google credentials.

    PROPOSALFLOW_HOME/exports/<client>/<title>-<id8>-v<N>.docx and .html   (the "client folder")
    PROPOSALFLOW_HOME/outbox/<client>-<id8>-v<N>.eml                        (the "draft")

Files are written to a temporary name and renamed into place, so a reader never sees half a file
and a crash leaves either nothing or the whole file. Their names are fixed by (proposal, version),
which makes every write idempotent. With `--send` (and PROPOSALFLOW_ALLOW_SEND) the .eml's message
goes out through SMTP_URL.
"""

from __future__ import annotations

import os
import tempfile
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from ..errors import Conflict
from .mail import send_smtp
from .render import render_docx, render_html, slugify
from .targets import DeliveryJob

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class LocalExporter:
    name = "local"
    remembers_folder = False

    def __init__(self, home: Path, *, smtp_url: str | None = None, smtp_timeout: float = 30.0):
        self.exports = home / "exports"
        self.outbox = home / "outbox"
        self.smtp_url = smtp_url
        self.smtp_timeout = smtp_timeout

    # folder ─────────────────────────────────────────────────────────────────────────────────
    def _folder(self, job: DeliveryJob) -> Path:
        return self.exports / f"{slugify(job.client_name, 40)}-{job.client_id[:8]}"

    def find_client_folder(self, job: DeliveryJob) -> dict | None:
        folder = self._folder(job)
        return {"path": str(folder), "link": folder.as_uri()} if folder.is_dir() else None

    def create_client_folder(self, job: DeliveryJob) -> dict:
        folder = self._folder(job)
        folder.mkdir(parents=True, exist_ok=True)
        return {"path": str(folder), "link": folder.as_uri()}

    # document ───────────────────────────────────────────────────────────────────────────────
    def _document_paths(self, job: DeliveryJob, folder: Path | None = None) -> tuple[Path, Path]:
        stem = f"{slugify(job.title, 50)}-{job.proposal_id[:8]}-v{job.version}"
        folder = folder or self._folder(job)
        return folder / f"{stem}.docx", folder / f"{stem}.html"

    def _document(self, docx_path: Path, html_path: Path) -> dict:
        # the email carries the .docx: a file:// link would mean nothing on the client's machine
        return {"id": str(html_path), "link": html_path.as_uri(), "docx": str(docx_path), "html": str(html_path),
                "email_link": f"attached: {docx_path.name}"}

    def find_document(self, job: DeliveryJob, key: str) -> dict | None:
        docx_path, html_path = self._document_paths(job)
        return self._document(docx_path, html_path) if docx_path.is_file() and html_path.is_file() else None

    def create_document(self, job: DeliveryJob, folder: dict, key: str) -> dict:
        docx_path, html_path = self._document_paths(job, Path(folder["path"]))
        with _atomic(docx_path) as tmp:
            render_docx(job.content, tmp, version=job.version)
        with _atomic(html_path) as tmp:
            tmp.write_text(render_html(job.content, version=job.version), encoding="utf-8")
        return self._document(docx_path, html_path)

    def share_document(self, job: DeliveryJob, document: dict, addresses: list[str], role: str) -> dict:
        return {"shared_with": []}  # local files are not shared

    # email ──────────────────────────────────────────────────────────────────────────────────
    def _eml_path(self, job: DeliveryJob) -> Path:
        return self.outbox / f"{slugify(job.client_name, 40)}-{job.proposal_id[:8]}-v{job.version}.eml"

    def find_message(self, job: DeliveryJob, key: str, message_id: str) -> dict | None:
        path = self._eml_path(job)
        if not path.is_file():
            return None
        with path.open("rb") as fh:
            found = BytesParser(policy=policy.default).parse(fh, headersonly=True)
        if (found["Message-ID"] or "").strip() != message_id:
            return None
        return {"id": str(path), "eml": str(path), "message_id": message_id}

    def create_message(self, job: DeliveryJob, message: EmailMessage, document: dict) -> dict:
        docx_path = Path(document["docx"])
        if docx_path.is_file():
            message.add_attachment(docx_path.read_bytes(), maintype="application", subtype=DOCX_TYPE.split("/", 1)[1],
                                   filename=docx_path.name)
        path = self._eml_path(job)
        with _atomic(path) as tmp:
            tmp.write_bytes(message.as_bytes(policy=policy.SMTP))
        return {"id": str(path), "eml": str(path), "message_id": message["Message-ID"]}

    def find_sent(self, job: DeliveryJob, message: dict) -> dict | None:
        raise Conflict(f"proposal {job.proposal_id} v{job.version}: an earlier attempt to send {message['eml']} "
                       "through SMTP ended without a record of the outcome — it may have been sent. Check the "
                       "recipient's mailbox; SMTP cannot tell, and sending twice is worse than not at all.")

    def send_message(self, job: DeliveryJob, message: dict) -> dict:
        from ..errors import ConfigurationError

        if not self.smtp_url:
            raise ConfigurationError("sending with the local exporters needs SMTP_URL (without it the email stays "
                                     f"in the outbox: {message['eml']})")
        with open(message["eml"], "rb") as fh:
            parsed = BytesParser(policy=policy.default).parse(fh)
        return send_smtp(parsed, self.smtp_url, timeout=self.smtp_timeout)


class _atomic:
    """Write to a temporary file beside `path`, then rename it into place."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        os.close(fd)
        self.tmp = Path(name)
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
