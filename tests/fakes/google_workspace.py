"""A local HTTPS server speaking the parts of Google's wire protocol delivery uses: the OAuth token
endpoint (service-account JWT bearer, refresh token), Drive v3 files.list (appProperties queries),
files.create (JSON and multipart upload), permissions.create, and Gmail v1 drafts create / list
(q=rfc822msgid:) / get / send.

It serves TLS with a throwaway self-signed certificate (`ca_file`): googleapiclient keeps https for
media uploads when the API endpoint is overridden, and httplib2 trusts the file named by
HTTPLIB2_CA_CERTS (read when httplib2 is imported — give it to a subprocess). Point proposalflow at
it with PROPOSALFLOW_GOOGLE_API_ENDPOINT=server.url and a key file whose token_uri is server.token_uri.

`fail(method, path_prefix, status, times, made=False)` answers the next `times` matching requests
with `status`; `made=True` performs the request first (a create that happened but was answered 5xx).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import re
import ssl
import tempfile
import threading
import uuid
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ACCESS_TOKEN = "ya29.local-google"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA (usable as HTTPLIB2_CA_CERTS), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "google-fake.crt", folder / "google-fake.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class GoogleWorkspaceServer:
    def __init__(self, folder: Path | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="google-fake-"))
        self.ca_file, key_file = self_signed_certificate(self.folder)
        self.files: dict[str, dict] = {}
        self.drafts: dict[str, dict] = {}
        self.sent: list[dict] = []
        self.permissions: list[dict] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.token_requests: list[dict] = []
        self._failures: list[dict] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"google": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}"
        self.token_uri = f"{self.url}/token"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "GoogleWorkspaceServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, method: str, path_prefix: str, status: int, times: int = 1, *, made: bool = False,
             retry_after: str | None = "0") -> None:
        with self._lock:
            self._failures.append({"method": method, "prefix": path_prefix, "status": status, "left": times,
                                   "made": made, "retry_after": retry_after})

    def docs(self) -> list[dict]:
        return [f for f in self.files.values() if f["mimeType"] == "application/vnd.google-apps.document"]

    def folders(self) -> list[dict]:
        return [f for f in self.files.values() if f["mimeType"] == "application/vnd.google-apps.folder"]

    def _failure(self, method: str, path: str) -> dict | None:
        with self._lock:
            for rule in self._failures:
                if rule["left"] > 0 and rule["method"] == method and path.startswith(rule["prefix"]):
                    rule["left"] -= 1
                    return rule
        return None


class _Handler(BaseHTTPRequestHandler):
    google: GoogleWorkspaceServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")

    # ── plumbing ─────────────────────────────────────────────────────────────────────────────
    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        g = self.google
        g.requests.append((method, parts.path))
        if parts.path == "/token":
            form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            g.token_requests.append(form)
            return self._json(200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"})
        if self.headers.get("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return self._error(401, "authError", "Request had invalid authentication credentials.")
        rule = g._failure(method, parts.path)
        if rule and not rule["made"]:
            return self._error(rule["status"], "backendError", "Backend Error", rule["retry_after"])
        try:
            status, answer = self._route(method, parts.path, query, body)
        except _NotFound as exc:
            return self._error(404, "notFound", f"File not found: {exc.args[0]}.")
        if rule:  # made, then answered with an error: the caller cannot know it happened
            return self._error(rule["status"], "backendError", "Backend Error", rule["retry_after"])
        self._json(status, answer)

    def _json(self, status: int, document: dict, headers: dict | None = None) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, reason: str, message: str, retry_after: str | None = None) -> None:
        self._json(status, {"error": {"code": status, "message": message,
                                      "errors": [{"reason": reason, "message": message}]}},
                   {"Retry-After": retry_after} if retry_after is not None else None)

    # ── the APIs ─────────────────────────────────────────────────────────────────────────────
    def _route(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, dict]:
        g = self.google
        if path == "/drive/v3/files" and method == "GET":
            return 200, {"files": [_public(f) for f in _matching(g.files.values(), query.get("q", ""))]}
        if path == "/drive/v3/files" and method == "POST":
            return 200, _public(self._create_file(json.loads(body)))
        if path == "/upload/drive/v3/files" and method == "POST":
            envelope = BytesParser(policy=policy.default).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
            metadata, media = list(envelope.iter_parts())
            file = self._create_file(json.loads(metadata.get_content()))
            file["media"] = media.get_content()
            return 200, _public(file)
        match = re.fullmatch(r"/drive/v3/files/([^/]+)/permissions", path)
        if match and method == "POST":
            if match.group(1) not in g.files:
                return 404, {"error": {"code": 404, "message": f"File not found: {match.group(1)}."}}
            g.permissions.append({"file": match.group(1), **json.loads(body)})
            return 200, {"id": f"perm-{len(g.permissions)}"}
        if path == "/gmail/v1/users/me/drafts" and method == "POST":
            raw = json.loads(body)["message"]["raw"]
            message = BytesParser(policy=policy.default).parsebytes(base64.urlsafe_b64decode(raw))
            draft_id = f"r-{uuid.uuid4().hex[:12]}"
            g.drafts[draft_id] = {"id": draft_id, "message_id": message["Message-ID"], "raw": raw,
                                  "message": {"id": f"m-{uuid.uuid4().hex[:12]}", "threadId": f"t-{draft_id}",
                                              "labelIds": ["DRAFT"]}}
            return 200, {"id": draft_id, "message": g.drafts[draft_id]["message"]}
        if path == "/gmail/v1/users/me/drafts" and method == "GET":
            wanted = query.get("q", "").removeprefix("rfc822msgid:")
            found = [{"id": d["id"], "message": d["message"]} for d in g.drafts.values()
                     if d["message_id"].strip("<>") == wanted]
            return 200, ({"drafts": found, "resultSizeEstimate": len(found)} if found else {"resultSizeEstimate": 0})
        if path == "/gmail/v1/users/me/drafts/send" and method == "POST":
            draft = g.drafts.pop(json.loads(body)["id"], None)
            if draft is None:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}
            g.sent.append(draft)
            return 200, {**draft["message"], "labelIds": ["SENT"]}
        match = re.fullmatch(r"/gmail/v1/users/me/drafts/([^/]+)", path)
        if match and method == "GET":
            draft = g.drafts.get(match.group(1))
            if draft is None:
                return 404, {"error": {"code": 404, "message": "Requested entity was not found."}}
            return 200, {"id": draft["id"], "message": draft["message"]}
        return 404, {"error": {"code": 404, "message": f"no route {method} {path}"}}

    def _create_file(self, metadata: dict) -> dict:
        g = self.google
        for parent in metadata.get("parents") or []:
            if parent not in g.files:
                raise _NotFound(parent)
        file_id = f"{'folder' if metadata['mimeType'].endswith('folder') else 'doc'}-{uuid.uuid4().hex[:10]}"
        kind = "drive/folders" if metadata["mimeType"].endswith("folder") else "document/d"
        host = "drive.google.com" if kind == "drive/folders" else "docs.google.com"
        file = {**metadata, "id": file_id, "webViewLink": f"https://{host}/{kind}/{file_id}"
                + ("" if kind == "drive/folders" else "/edit"), "trashed": False}
        g.files[file_id] = file
        return file


class _NotFound(Exception):
    pass


def _public(file: dict) -> dict:
    return {k: file[k] for k in ("id", "name", "webViewLink") if k in file}


def _matching(files, q: str) -> list[dict]:
    """Drive's query language, as far as delivery uses it: mimeType = '…', appProperties has { key='…' and
    value='…' }, trashed = false."""
    found = []
    mime = re.search(r"mimeType = '([^']+)'", q)
    props = re.findall(r"appProperties has \{ key='([^']+)' and value='([^']+)' \}", q)
    for f in files:
        if mime and f["mimeType"] != mime.group(1):
            continue
        if "trashed = false" in q and f.get("trashed"):
            continue
        if all((f.get("appProperties") or {}).get(k) == v for k, v in props):
            found.append(f)
    return found
