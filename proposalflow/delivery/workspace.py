"""The Google Workspace target: a Drive folder per client, the proposal as a Google Doc in it, a
Gmail draft to the client's contact with the Doc's link.

The Doc is the proposal's HTML uploaded to Drive with the Google Docs MIME type, which Drive
converts (headings, paragraphs, lists, links, the numbered references) in ONE request under the
`drive.file` scope — rather than `documents.create` + a `batchUpdate` whose index arithmetic would
re-implement a Markdown renderer, and which would need the wider `documents` scope.

Every request goes through `_execute`: a rate limit, a timeout (the httplib2 transport's), and
bounded retries on 429, 5xx and Google's 403 rate-limit reasons that honour Retry-After. Other
4xx are not retried: a missing scope (403 insufficientPermissions) or revoked credentials
(invalid_grant) raise GoogleAuthorizationFailed with what to do. A create that failed with a
5xx or a network error may still have happened, so before trying it again the target looks the
object up by its idempotency key (Drive `appProperties`; the draft's Message-ID).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Callable

from ..errors import GoogleAuthorizationFailed, IntegrationFailed, IntegrationRejected
from ..http import backoff_delay, retry_after_seconds
from .google_credentials import SCOPES
from .render import render_html
from .targets import DeliveryJob, FolderMissing

FOLDER_TYPE = "application/vnd.google-apps.folder"
DOC_TYPE = "application/vnd.google-apps.document"
KEY_PROPERTY = "proposalflow_key"
CLIENT_PROPERTY = "proposalflow_client"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "RATE_LIMIT_EXCEEDED", "backendError"}
SCOPE_REASONS = {"insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}
MAX_WAIT = 120.0


class _Ambiguous(Exception):
    """A failure after which a create may or may not have happened (5xx, connection lost)."""


class GoogleWorkspace:
    name = "google"
    remembers_folder = True

    def __init__(self, http, *, parent_folder: str | None = None, attempts: int = 5,
                 requests_per_second: float = 5.0, sleep: Callable[[float], None] = time.sleep,
                 credentials_description: str = "", api_endpoint: str | None = None):
        """`http`: an authorised httplib2-compatible client (google_credentials.authorized_http).
        `api_endpoint` (PROPOSALFLOW_GOOGLE_API_ENDPOINT): one https origin serving both Drive and Gmail
        at their usual paths (/drive/v3/…, /upload/drive/v3/…, /gmail/v1/…) instead of Google's hosts."""
        from googleapiclient.discovery import build

        root = api_endpoint.rstrip("/") if api_endpoint else None
        self.drive = build("drive", "v3", http=http, static_discovery=True, cache_discovery=False,
                           client_options={"api_endpoint": f"{root}/drive/v3/"} if root else None)
        self.gmail = build("gmail", "v1", http=http, static_discovery=True, cache_discovery=False,
                           client_options={"api_endpoint": f"{root}/"} if root else None)
        self.parent_folder = parent_folder
        self.attempts = attempts
        self.sleep = sleep
        self.credentials_description = credentials_description
        self._interval = 1.0 / requests_per_second
        self._next_at = 0.0
        self._lock = threading.Lock()

    # ── folder ──────────────────────────────────────────────────────────────────────────────
    def find_client_folder(self, job: DeliveryJob) -> dict | None:
        query = (f"mimeType = '{FOLDER_TYPE}' and appProperties has {{ key='{CLIENT_PROPERTY}' and "
                 f"value='{job.client_id}' }} and trashed = false")
        found = self._list(query, "look up the client's Drive folder")
        return self._folder(found[0]) if found else None

    def create_client_folder(self, job: DeliveryJob) -> dict:
        body = {"name": job.client_name, "mimeType": FOLDER_TYPE, "appProperties": {CLIENT_PROPERTY: job.client_id},
                "description": f"Proposals for {job.client_name} (proposalflow client {job.client_id})"}
        if self.parent_folder:
            body["parents"] = [self.parent_folder]
        return self._create(lambda: self.drive.files().create(body=body, fields="id,name,webViewLink",
                                                              supportsAllDrives=True),
                            lambda: self.find_client_folder(job), self._folder, "create the client's Drive folder")

    @staticmethod
    def _folder(item: dict) -> dict:
        return {"folder_id": item["id"], "link": item.get("webViewLink")}

    # ── document ────────────────────────────────────────────────────────────────────────────
    def find_document(self, job: DeliveryJob, key: str) -> dict | None:
        found = self._list(f"appProperties has {{ key='{KEY_PROPERTY}' and value='{key}' }} and trashed = false",
                           "look up the proposal's Google Doc")
        return self._document(found[0]) if found else None

    def create_document(self, job: DeliveryJob, folder: dict, key: str) -> dict:
        from googleapiclient.http import MediaInMemoryUpload

        html = render_html(job.content, version=job.version).encode("utf-8")
        body = {"name": f"{job.title} (v{job.version})", "mimeType": DOC_TYPE, "parents": [folder["folder_id"]],
                "appProperties": {KEY_PROPERTY: key, "proposalflow_version": str(job.version)},
                "description": f"proposalflow proposal {job.proposal_id}, version {job.version}"}
        try:
            return self._create(
                lambda: self.drive.files().create(
                    body=body, media_body=MediaInMemoryUpload(html, mimetype="text/html", resumable=False),
                    fields="id,name,webViewLink", supportsAllDrives=True),
                lambda: self.find_document(job, key), self._document, "create the Google Doc")
        except IntegrationRejected as exc:
            if getattr(exc, "status", None) == 404 and folder["folder_id"] in str(exc):
                raise FolderMissing(f"the Drive folder {folder['folder_id']} of client {job.client_id} is gone") from exc
            raise

    @staticmethod
    def _document(item: dict) -> dict:
        link = item.get("webViewLink") or f"https://docs.google.com/document/d/{item['id']}/edit"
        return {"id": item["id"], "link": link}

    def share_document(self, job: DeliveryJob, document: dict, addresses: list[str], role: str) -> dict:
        """Drive keeps one permission per user: asking again for the same user changes nothing."""
        shared = []
        for address in addresses:
            permission = self._execute(
                self.drive.permissions().create(fileId=document["id"], sendNotificationEmail=False, fields="id",
                                                supportsAllDrives=True,
                                                body={"type": "user", "role": role, "emailAddress": address}),
                f"share the Google Doc with {address}")
            shared.append({"address": address, "role": role, "permission_id": permission.get("id")})
        return {"shared_with": shared}

    # ── email ───────────────────────────────────────────────────────────────────────────────
    def find_message(self, job: DeliveryJob, key: str, message_id: str) -> dict | None:
        listed = self._execute(self.gmail.users().drafts().list(userId="me", q=f"rfc822msgid:{message_id.strip('<>')}",
                                                                maxResults=5),
                               "look up the Gmail draft")
        drafts = listed.get("drafts") or []
        return self._draft(drafts[0], message_id) if drafts else None

    def create_message(self, job: DeliveryJob, message: EmailMessage, document: dict) -> dict:
        raw = base64.urlsafe_b64encode(message.as_bytes()).decode("ascii")
        message_id = message["Message-ID"]
        return self._create(
            lambda: self.gmail.users().drafts().create(userId="me", body={"message": {"raw": raw}}),
            lambda: self.find_message(job, "", message_id), lambda draft: self._draft(draft, message_id),
            "create the Gmail draft")

    @staticmethod
    def _draft(draft: dict, message_id: str) -> dict:
        message = draft.get("message") or {}
        return {"id": draft["id"], "draft_id": draft["id"], "gmail_message_id": message.get("id"),
                "thread_id": message.get("threadId"), "message_id": message_id}

    def find_sent(self, job: DeliveryJob, message: dict) -> dict | None:
        """A sent draft no longer exists as a draft: gone means sent."""
        from googleapiclient.errors import HttpError

        try:
            self._execute(self.gmail.users().drafts().get(userId="me", id=message["draft_id"], format="minimal"),
                          "look up the Gmail draft", raise_http=True)
        except HttpError as exc:
            if exc.resp.status == 404:
                return {"sent": True, "draft_id": message["draft_id"], "note": "the draft was already sent"}
            raise self._error(exc, "look up the Gmail draft") from exc
        return None

    def send_message(self, job: DeliveryJob, message: dict) -> dict:
        """drafts.send; after a 5xx or a lost connection, a draft that is gone was sent: not sent again."""
        return self._create(lambda: self.gmail.users().drafts().send(userId="me", body={"id": message["draft_id"]}),
                            lambda: self.find_sent(job, message),
                            lambda sent: {"sent": True, "gmail_message_id": sent.get("id"),
                                          "thread_id": sent.get("threadId")},
                            "send the Gmail draft")

    # ── requests ────────────────────────────────────────────────────────────────────────────
    def _list(self, query: str, what: str) -> list[dict]:
        result = self._execute(self.drive.files().list(q=query, fields="files(id,name,webViewLink)", pageSize=10,
                                                       spaces="drive", supportsAllDrives=True,
                                                       includeItemsFromAllDrives=True), what)
        return result.get("files") or []

    def _create(self, make_request, find, normalise, what: str) -> dict:
        """A non-idempotent create: after an ambiguous failure, look before trying again.
        `find` returns an already normalised result; the create's response goes through `normalise`."""
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                found = find()
                if found:
                    return found
            try:
                return normalise(self._execute(make_request(), what, ambiguous_is_final=False))
            except _Ambiguous as exc:
                if attempt == self.attempts:
                    raise IntegrationFailed(f"Google: could not {what} after {self.attempts} attempts ({exc.args[0]})") from None
                self._wait(exc.args[1], attempt)
        raise AssertionError("unreachable")

    def _execute(self, request, what: str, *, ambiguous_is_final: bool = True, raise_http: bool = False):
        """Run one API request with retries. `ambiguous_is_final=False`: raise _Ambiguous on a 5xx or a
        lost connection instead of retrying (the caller checks whether the create happened)."""
        import httplib2
        from google.auth.exceptions import RefreshError, TransportError
        from googleapiclient.errors import HttpError

        last = ""
        for attempt in range(1, self.attempts + 1):
            self._throttle()
            try:
                return request.execute(num_retries=0)
            except HttpError as exc:
                status, reasons = exc.resp.status, _reasons(exc)
                if raise_http and status == 404:
                    raise
                retryable = status in RETRYABLE_STATUS or (status == 403 and reasons & RATE_LIMIT_REASONS)
                if not retryable:
                    raise self._error(exc, what) from exc
                last = f"HTTP {status} {exc.reason}".strip()
                delay = retry_after_seconds(SimpleNamespace(headers=exc.resp), -1.0)
                if status >= 500 and not ambiguous_is_final:
                    raise _Ambiguous(last, delay) from exc
                if attempt < self.attempts:
                    self._wait(delay, attempt)
            except RefreshError as exc:
                if getattr(exc, "retryable", False) and attempt < self.attempts:
                    last = f"token refresh: {exc}"
                    self._wait(-1.0, attempt)
                    continue
                raise _refresh_error(exc, self.credentials_description) from exc
            except (httplib2.HttpLib2Error, TransportError, OSError) as exc:  # timeouts, resets, DNS
                last = f"{type(exc).__name__}: {exc}"
                if not ambiguous_is_final:
                    raise _Ambiguous(last, -1.0) from exc
                if attempt < self.attempts:
                    self._wait(-1.0, attempt)
        raise IntegrationFailed(f"Google: could not {what} after {self.attempts} attempts ({last})")

    def _wait(self, retry_after: float, attempt: int) -> None:
        """Retry-After when the server gave one, else exponential backoff with jitter."""
        self.sleep(min(MAX_WAIT, retry_after if retry_after >= 0 else backoff_delay(attempt, base=1.0)))

    def _throttle(self) -> None:
        with self._lock:
            now = time.monotonic()
            wait = self._next_at - now
            self._next_at = max(now, self._next_at) + self._interval
        if wait > 0:
            time.sleep(wait)

    def _error(self, exc, what: str) -> Exception:
        status, reasons = exc.resp.status, _reasons(exc)
        if status == 403 and reasons & SCOPE_REASONS:
            return GoogleAuthorizationFailed(
                f"Google refused to {what}: the credentials lack a scope (403 insufficientPermissions). proposalflow "
                f"needs {', '.join(SCOPES)}: run `proposalflow google auth` again, or for a service account add "
                "them to its domain-wide delegation (Admin console → Security → API controls)"
                + (f" [{self.credentials_description}]" if self.credentials_description else ""))
        if status == 401:
            return GoogleAuthorizationFailed(f"Google refused to {what}: 401 {exc.reason} — the credentials are not "
                                             "valid any more; run `proposalflow google auth` again")
        rejected = IntegrationRejected(f"Google refused to {what}: HTTP {status} {exc.reason}"
                                       + (f" ({', '.join(sorted(reasons))})" if reasons else ""))
        rejected.status = status
        return rejected


def _reasons(exc) -> set[str]:
    try:
        error = json.loads(exc.content.decode("utf-8")).get("error", {})
    except (ValueError, AttributeError, UnicodeDecodeError):
        return set()
    if not isinstance(error, dict):
        return set()
    reasons = {e.get("reason") for e in error.get("errors") or [] if isinstance(e, dict)}
    reasons |= {d.get("reason") for d in error.get("details") or [] if isinstance(d, dict)}
    if error.get("status"):
        reasons.add(error["status"])
    return {r for r in reasons if r}


def _refresh_error(exc, description: str) -> Exception:
    text = str(exc)
    who = f" [{description}]" if description else ""
    if "invalid_grant" in text:
        return GoogleAuthorizationFailed(
            "Google refused the credentials (invalid_grant): the refresh token was revoked or has expired, or a "
            "service account's key was deleted or its delegation is not authorised. Run `proposalflow google auth` "
            f"again (or check the service account){who}")
    if "unauthorized_client" in text or "access_denied" in text:
        return GoogleAuthorizationFailed(f"Google refused the token request ({text}): for a service account, "
                                         "authorise its client id for the scopes " + ", ".join(SCOPES)
                                         + f" in the Admin console (domain-wide delegation){who}")
    return GoogleAuthorizationFailed(f"Google token request failed: {text}{who}")
