"""The email that goes with a delivered proposal: subject and body from a template, an RFC 822
message with a deterministic Message-ID (so a draft made before a crash can be found again), and
SMTP sending for the local target.

The template is plain text: a `Subject:` line, a blank line, the body. Placeholders in braces:
{client_name} {contact_name} {greeting_name} {title} {link} {summary} {version} {sender}.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigurationError, IntegrationFailed, IntegrationRejected
from ..http import backoff_delay

DEFAULT_TEMPLATE = """Subject: {title}

Hello {greeting_name},

thank you for your time. Our proposal for {client_name} is ready for you:

{link}

In short: {summary}

We look forward to your thoughts.

Kind regards,
{sender}
"""

FIELDS = ("client_name", "contact_name", "greeting_name", "title", "link", "summary", "version", "sender")


@dataclass(frozen=True)
class EmailText:
    subject: str
    body: str


class _Fields(dict):
    def __missing__(self, key):
        raise ConfigurationError(f"email template: unknown placeholder {{{key}}}; known: "
                                 + ", ".join("{" + f + "}" for f in FIELDS))


def load_template(path: Path | None) -> str:
    if path is None:
        return DEFAULT_TEMPLATE
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"PROPOSALFLOW_EMAIL_TEMPLATE {path}: {exc.strerror or exc}") from exc


def render_email(template: str, **values: str) -> EmailText:
    """Fill the template; its first line must be `Subject: …`."""
    head, _, body = template.lstrip("\ufeff").partition("\n")
    if not head.lower().startswith("subject:"):
        raise ConfigurationError("email template: the first line must be 'Subject: …', then a blank line, then the body")
    fields = _Fields({k: str(v) for k, v in values.items()})
    try:
        subject = head[len("subject:"):].strip().format_map(fields)
        text = body.lstrip("\r\n").format_map(fields)
    except (ValueError, IndexError) as exc:
        raise ConfigurationError(f"email template: {exc} (write literal braces as {{{{ and }}}})") from exc
    return EmailText(subject=" ".join(subject.split()), body=text)


def summary_of(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def message_id_for(key: str) -> str:
    """A Message-ID made from the idempotency key: the same delivery step always gets the same one."""
    local = key.replace(":", ".").replace(" ", "")
    return f"<{local}@proposalflow>"


def build_message(*, to: str, subject: str, body: str, message_id: str, sender: str | None = None,
                  proposal_id: str | None = None, version: int | None = None) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    if sender:
        message["From"] = sender
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    if proposal_id:
        message["X-Proposalflow-Proposal"] = f"{proposal_id} v{version}" if version else proposal_id
    message.set_content(body)
    return message


# ── SMTP (local target, `deliver --send`) ──────────────────────────────────────────────────────

@dataclass(frozen=True)
class SmtpEndpoint:
    host: str
    port: int
    implicit_tls: bool
    starttls: str  # "auto" (if offered), "require", "never"
    username: str | None
    password: str | None

    @property
    def display(self) -> str:
        return f"{'smtps' if self.implicit_tls else 'smtp'}://{self.host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpEndpoint:
    """smtp://[user:pass@]host[:587][?starttls=auto|require|never] or smtps://[user:pass@]host[:465]."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigurationError("SMTP_URL must look like smtp://user:password@host:587 or smtps://user:password@host:465")
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    starttls = query.get("starttls", "auto").lower()
    if starttls not in ("auto", "require", "never"):
        raise ConfigurationError("SMTP_URL: starttls must be auto, require or never")
    implicit = parts.scheme == "smtps"
    return SmtpEndpoint(host=parts.hostname, port=parts.port or (465 if implicit else 587), implicit_tls=implicit,
                        starttls="never" if implicit else starttls,
                        username=unquote(parts.username) if parts.username else None,
                        password=unquote(parts.password) if parts.password else None)


def send_smtp(message: EmailMessage, url: str, *, timeout: float = 30.0, attempts: int = 3,
              sleep=time.sleep) -> dict:
    """Send through SMTP. Temporary failures (4xx replies, network errors) are retried with backoff;
    a permanent refusal (5xx) raises IntegrationRejected."""
    endpoint = parse_smtp_url(url)
    last, surely_unsent = "", True  # stays True while every failure was a refusal or a failed connect
    for attempt in range(1, attempts + 1):
        try:
            return _send_once(message, endpoint, timeout)
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            if 400 <= exc.smtp_code < 500 and attempt < attempts:
                last = f"{exc.smtp_code} {text}"
                sleep(backoff_delay(attempt, base=1.0))
                continue
            if 400 <= exc.smtp_code < 500:
                raise _unsent(IntegrationFailed(f"SMTP {endpoint.display}: {exc.smtp_code} {text}"), surely_unsent) from exc
            raise IntegrationRejected(f"SMTP {endpoint.display} refused the message: {exc.smtp_code} {text}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            raise IntegrationRejected(f"SMTP {endpoint.display} refused the recipients: {exc.recipients}") from exc
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, socket.timeout, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
            if not isinstance(exc, (ConnectionRefusedError, smtplib.SMTPConnectError, socket.gaierror)):
                surely_unsent = False  # the connection broke somewhere: the message may have gone
            if attempt < attempts:
                sleep(backoff_delay(attempt, base=1.0))
                continue
    raise _unsent(IntegrationFailed(f"SMTP {endpoint.display}: not sent after {attempts} attempts ({last})"),
                  surely_unsent)


def _unsent(exc: IntegrationFailed, surely_unsent: bool) -> IntegrationFailed:
    """Mark a transient failure after which the message was certainly not accepted (so a later
    attempt may send it without asking whether it went out)."""
    if surely_unsent:
        exc.side_effect_possible = False
    return exc


def _send_once(message: EmailMessage, endpoint: SmtpEndpoint, timeout: float) -> dict:
    context = ssl.create_default_context()
    smtp_class = smtplib.SMTP_SSL if endpoint.implicit_tls else smtplib.SMTP
    kwargs = {"context": context} if endpoint.implicit_tls else {}
    with smtp_class(endpoint.host, endpoint.port, timeout=timeout, **kwargs) as smtp:
        smtp.ehlo()
        if not endpoint.implicit_tls and endpoint.starttls != "never":
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            elif endpoint.starttls == "require":
                raise ConfigurationError(f"SMTP {endpoint.display} does not offer STARTTLS (starttls=require)")
        if endpoint.username:
            smtp.login(endpoint.username, endpoint.password or "")
        refused = smtp.send_message(message)
    return {"smtp": endpoint.display, "message_id": message["Message-ID"], "refused": sorted(refused)}
