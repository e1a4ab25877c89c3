"""The Google Workspace target, fully offline: google-api-python-client's own HttpMockSequence under
google-auth-httplib2's AuthorizedHttp, so the token exchange is part of the recorded sequence.

Asserted: the exact requests (token, folder lookup/create, Doc upload, sharing, draft), the MIME
message inside the draft, retries on 429/503 honouring Retry-After, refusal on 403 and on a revoked
grant, and exactly once across a failure after the Doc step and across a crash before its record.
"""

import base64
import json
from email import policy
from email.parser import BytesParser
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from googleapiclient.http import HttpMockSequence
from pydantic import SecretStr

from proposalflow.delivery import service
from proposalflow.delivery.google_credentials import (SCOPES, authorized_http, load_user_credentials,
                                                      service_account_credentials, store_user_credentials)
from proposalflow.delivery.workspace import GoogleWorkspace
from proposalflow.errors import GoogleAuthorizationFailed
from proposalflow.proposals import status
from proposalflow.settings import Settings
from tests.delivery_support import make_proposal

SUBJECT = "sales@agency.example"
TOKEN = ({"status": "200", "content-type": "application/json"},
         json.dumps({"access_token": "ya29.offline-test", "expires_in": 3600, "token_type": "Bearer"}))
EMPTY_LIST = ({"status": "200"}, json.dumps({"files": []}))
FOLDER = ({"status": "200"}, json.dumps({"id": "folder-1", "name": "Northwind Logistics",
                                         "webViewLink": "https://drive.google.com/drive/folders/folder-1"}))
DOC = ({"status": "200"}, json.dumps({"id": "doc-1", "name": "Route optimisation for Northwind (v1)",
                                      "webViewLink": "https://docs.google.com/document/d/doc-1/edit"}))
DRAFT = ({"status": "200"}, json.dumps({"id": "draft-1", "message": {"id": "msg-1", "threadId": "thr-1",
                                                                     "labelIds": ["DRAFT"]}}))
PERMISSION = ({"status": "200"}, json.dumps({"id": "perm-1"}))


def http_error(status: int, reason: str, message: str, **headers) -> tuple:
    return ({"status": str(status), "content-type": "application/json", **headers},
            json.dumps({"error": {"code": status, "message": message, "errors": [{"reason": reason,
                                                                                   "message": message}]}}))


@pytest.fixture(scope="module")
def service_account_file(tmp_path_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # throwaway, made for this test
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path = tmp_path_factory.mktemp("google") / "service-account.json"
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "proposalflow-test", "private_key_id": "key-1",
        "private_key": pem, "client_email": "delivery@proposalflow-test.iam.gserviceaccount.com",
        "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token"}))
    return path


@pytest.fixture
def settings(db_url, tmp_path, service_account_file) -> Settings:
    return Settings(DATABASE_URL=db_url, PROPOSALFLOW_HOME=str(tmp_path / "home"), PROPOSALFLOW_DELIVERY="google",
                    GOOGLE_APPLICATION_CREDENTIALS=str(service_account_file), PROPOSALFLOW_GOOGLE_SUBJECT=SUBJECT)


class Google:
    """A GoogleWorkspace over a recorded HttpMockSequence; `sleeps` are the waits it asked for."""

    def __init__(self, settings: Settings, responses: list, credentials=None):
        self.mock = HttpMockSequence(list(responses))
        self.sleeps: list[float] = []
        credentials = credentials or service_account_credentials(settings.google_application_credentials,
                                                                 settings.google_subject)
        self.target = GoogleWorkspace(authorized_http(credentials, timeout=5, http=self.mock), sleep=self.sleeps.append,
                                      requests_per_second=1000, attempts=4)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, what) for every request made, in order."""
        return [describe(uri, method, body) for uri, method, body, _ in self.mock.request_sequence]

    def body(self, index: int) -> str:
        body = self.mock.request_sequence[index][2]
        return body.decode() if isinstance(body, bytes) else body

    def headers(self, index: int) -> dict:
        return self.mock.request_sequence[index][3]

    def left(self) -> int:
        return len(self.mock._iterable)


def describe(uri: str, method: str, body) -> tuple[str, str]:
    parts = urlsplit(uri)
    query = parse_qs(parts.query)
    if parts.netloc == "oauth2.googleapis.com":
        return method, "token"
    if parts.path == "/drive/v3/files" and method == "GET":
        return method, "drive.files.list " + ("folder" if "folder" in query["q"][0] else "by-key")
    if parts.path == "/drive/v3/files" and method == "POST":
        return method, "drive.files.create " + json.loads(body)["mimeType"].rsplit(".", 1)[1]
    if parts.path == "/upload/drive/v3/files":
        return method, f"drive.files.create upload ({query['uploadType'][0]})"
    if parts.path.endswith("/permissions"):
        return method, "drive.permissions.create"
    if parts.path == "/gmail/v1/users/me/drafts" and method == "POST":
        return method, "gmail.drafts.create"
    if parts.path == "/gmail/v1/users/me/drafts/send":
        return method, "gmail.drafts.send"
    if parts.path == "/gmail/v1/users/me/drafts":
        return method, "gmail.drafts.list"
    return method, parts.path


def jwt_claims(token_request_body: str) -> dict:
    assertion = parse_qs(token_request_body)["assertion"][0]
    payload = assertion.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def multipart(content_type: str, body: str) -> list:
    envelope = BytesParser(policy=policy.default).parsebytes(f"Content-Type: {content_type}\r\n\r\n{body}".encode())
    return list(envelope.iter_parts())


def draft_message(body: str):
    raw = json.loads(body)["message"]["raw"]
    assert "+" not in raw and "/" not in raw  # base64url, not plain base64
    return BytesParser(policy=policy.default).parsebytes(base64.urlsafe_b64decode(raw))


def test_first_delivery_makes_folder_doc_share_and_draft_in_this_exact_order(db, settings):
    pid = make_proposal(db)
    shared = settings.model_copy(update={"google_share_with": "ana@agency.example"})
    google = Google(settings, [TOKEN, EMPTY_LIST, FOLDER, DOC, PERMISSION, DRAFT])
    report = service.deliver(db, pid, target=google.target, settings=shared)

    assert google.requests == [
        ("POST", "token"),                                   # the service account's JWT-bearer exchange
        ("GET", "drive.files.list folder"),                  # the client's folder, by its appProperties tag
        ("POST", "drive.files.create folder"),
        ("POST", "drive.files.create upload (multipart)"),   # the HTML, converted to a Google Doc
        ("POST", "drive.permissions.create"),
        ("POST", "gmail.drafts.create"),
    ] and google.left() == 0

    claims = jwt_claims(google.body(0))
    assert claims["sub"] == SUBJECT and claims["iss"].startswith("delivery@")  # domain-wide delegation
    assert set(claims["scope"].split()) == set(SCOPES)
    assert all(google.headers(i)["authorization"] == "Bearer ya29.offline-test" for i in range(1, 6))

    folder_query = parse_qs(urlsplit(google.mock.request_sequence[1][0]).query)["q"][0]
    assert "appProperties has { key='proposalflow_client'" in folder_query and "trashed = false" in folder_query
    parts = multipart(google.headers(3)["content-type"], google.body(3))
    assert [p.get_content_type() for p in parts] == ["application/json", "text/html"]
    metadata = json.loads(parts[0].get_content())
    assert metadata["mimeType"] == "application/vnd.google-apps.document" and metadata["parents"] == ["folder-1"]
    assert metadata["appProperties"]["proposalflow_key"] == f"proposal:{pid}:v1:google:document"
    assert '<h2 id="approach">Approach</h2>' in parts[1].get_content()
    assert json.loads(google.body(4)) == {"type": "user", "role": "commenter", "emailAddress": "ana@agency.example"}

    message = draft_message(google.body(5))
    assert message["To"] == "maria@northwind.example"
    assert message["Subject"] == "Route optimisation for Northwind"
    assert message["Message-ID"] == f"<proposal.{pid}.v1.google.message@proposalflow>"
    assert "https://docs.google.com/document/d/doc-1/edit" in message.get_content()

    assert report["doc_link"] == "https://docs.google.com/document/d/doc-1/edit" and report["mail_state"] == "draft"
    assert report["made"] == ["folder", "document", "message"]
    row = db.execute("SELECT p.status, p.doc_link, p.metadata->'delivery', c.drive_folder_id FROM proposals p "
                     "JOIN clients c ON c.id = p.client_id WHERE p.id = %s", (pid,)).fetchone()
    assert row[0] == "sent" and row[1] == report["doc_link"] and row[3] == "folder-1"
    assert {k: row[2][k] for k in ("drive_folder_id", "drive_file_id", "gmail_draft_id")} == \
        {"drive_folder_id": "folder-1", "drive_file_id": "doc-1", "gmail_draft_id": "draft-1"}

    # delivering the same version again: no request at all
    nothing = Google(settings, [])
    assert service.deliver(db, pid, target=nothing.target, settings=settings)["already_delivered"] is True
    assert nothing.requests == []

    # another proposal for the same client: the remembered folder, no lookup
    second = make_proposal(db, db.execute("SELECT client_id FROM proposals WHERE id = %s", (pid,)).fetchone()[0],
                           title="Warehouse analytics")
    google2 = Google(settings, [TOKEN, DOC, DRAFT])
    service.deliver(db, second, target=google2.target, settings=settings)
    assert [r[1] for r in google2.requests] == ["token", "drive.files.create upload (multipart)", "gmail.drafts.create"]


def test_429_and_503_are_retried_honouring_retry_after_and_a_503_create_is_looked_up_first(db, settings):
    pid = make_proposal(db)
    google = Google(settings, [
        TOKEN, EMPTY_LIST, FOLDER,
        http_error(429, "rateLimitExceeded", "Rate limit exceeded", **{"retry-after": "7"}),
        http_error(503, "backendError", "Backend Error", **{"retry-after": "2"}),
        EMPTY_LIST,  # did the 503'd create happen after all? no
        DOC, DRAFT])
    report = service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests] == [
        "token", "drive.files.list folder", "drive.files.create folder",
        "drive.files.create upload (multipart)", "drive.files.create upload (multipart)", "drive.files.list by-key",
        "drive.files.create upload (multipart)", "gmail.drafts.create"]
    assert google.sleeps == [7.0, 2.0]
    assert report["document"]["id"] == "doc-1"


def test_a_503_whose_create_did_happen_is_found_not_made_twice(db, settings):
    pid = make_proposal(db)
    found = ({"status": "200"}, json.dumps({"files": [json.loads(DOC[1])]}))
    google = Google(settings, [TOKEN, EMPTY_LIST, FOLDER, http_error(503, "backendError", "Backend Error"), found, DRAFT])
    report = service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests].count("drive.files.create upload (multipart)") == 1
    assert report["document"]["id"] == "doc-1" and len(google.sleeps) == 1


def test_403_missing_scope_is_refused_without_retry_then_a_rerun_makes_only_the_draft(db, settings):
    pid = make_proposal(db)
    google = Google(settings, [TOKEN, EMPTY_LIST, FOLDER, DOC,
                               http_error(403, "insufficientPermissions", "Request had insufficient authentication "
                                                                          "scopes.")])
    with pytest.raises(GoogleAuthorizationFailed, match="lack a scope.*gmail.compose.*google auth"):
        service.deliver(db, pid, target=google.target, settings=settings)
    assert google.requests[-1] == ("POST", "gmail.drafts.create") and google.sleeps == []
    assert status.current_status(db, pid) == "approved"
    assert db.execute("SELECT status, error LIKE 'message: GoogleAuthorizationFailed%%' FROM deliveries").fetchone() \
        == ("failed", True)

    rerun = Google(settings, [TOKEN, DRAFT])  # the grant was fixed; the Doc exists and is recorded
    report = service.deliver(db, pid, target=rerun.target, settings=settings)
    assert [r[1] for r in rerun.requests] == ["token", "gmail.drafts.create"]
    assert report["made"] == ["message"] and report["doc_link"].endswith("/doc-1/edit")
    assert status.current_status(db, pid) == "sent"


def test_a_crash_between_the_doc_upload_and_its_record_finds_the_doc_instead_of_making_another(db, settings):
    """The state a process killed right after Drive answered leaves: the step is pending, not done."""
    pid = make_proposal(db)
    client = db.execute("SELECT client_id FROM proposals WHERE id = %s", (pid,)).fetchone()[0]
    db.execute("UPDATE clients SET drive_folder_id = 'folder-1' WHERE id = %s", (client,))
    delivery = db.execute("INSERT INTO deliveries (proposal_id, version, target, status) VALUES (%s, 1, 'google', "
                          "'running') RETURNING id", (pid,)).fetchone()[0]
    db.execute("INSERT INTO delivery_steps (delivery_id, step, idempotency_key, state, attempts) VALUES "
               "(%s, 'document', %s, 'pending', 1)", (delivery, f"proposal:{pid}:v1:google:document"))
    found = ({"status": "200"}, json.dumps({"files": [json.loads(DOC[1])]}))
    google = Google(settings, [TOKEN, found, DRAFT])
    report = service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests] == ["token", "drive.files.list by-key", "gmail.drafts.create"]
    assert f"value='proposal:{pid}:v1:google:document'" in parse_qs(urlsplit(google.mock.request_sequence[1][0]).query)["q"][0]
    assert report["document"]["id"] == "doc-1" and report["made"] == ["message"]
    assert db.execute("SELECT state, attempts FROM delivery_steps WHERE step = 'document'").fetchone() == ("done", 1)


def test_revoked_grant_is_a_clear_error_and_nothing_is_recorded_done(db, settings):
    pid = make_proposal(db)
    revoked = ({"status": "400", "content-type": "application/json"},
               json.dumps({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))
    google = Google(settings, [revoked])
    with pytest.raises(GoogleAuthorizationFailed, match="invalid_grant.*proposalflow google auth"):
        service.deliver(db, pid, target=google.target, settings=settings)
    assert google.requests == [("POST", "token")]
    assert db.execute("SELECT count(*) FROM delivery_steps WHERE state = 'done'").fetchone()[0] == 0
    assert status.current_status(db, pid) == "approved"


def test_send_only_when_asked_and_allowed_and_a_later_send_sends_the_existing_draft(db, settings):
    pid = make_proposal(db)
    with pytest.raises(Exception, match="PROPOSALFLOW_ALLOW_SEND"):
        service.deliver(db, pid, send=True, target=Google(settings, []).target, settings=settings)
    google = Google(settings, [TOKEN, EMPTY_LIST, FOLDER, DOC, DRAFT])
    assert service.deliver(db, pid, target=google.target, settings=settings)["mail_state"] == "draft"

    allowed = settings.model_copy(update={"allow_send": True})
    sent_response = ({"status": "200"}, json.dumps({"id": "msg-1", "threadId": "thr-1", "labelIds": ["SENT"]}))
    sender = Google(settings, [TOKEN, sent_response])
    report = service.deliver(db, pid, send=True, target=sender.target, settings=allowed)
    assert [r[1] for r in sender.requests] == ["token", "gmail.drafts.send"]
    assert json.loads(sender.body(1)) == {"id": "draft-1"}
    assert report["mail_state"] == "sent" and report["made"] == ["send"]
    again = Google(settings, [])
    assert service.deliver(db, pid, send=True, target=again.target, settings=allowed)["already_delivered"] is True


def test_a_service_account_without_a_subject_is_refused_before_any_request(db, settings):
    pid = make_proposal(db)
    no_subject = settings.model_copy(update={"google_subject": None})
    with pytest.raises(GoogleAuthorizationFailed, match="no Gmail mailbox.*PROPOSALFLOW_GOOGLE_SUBJECT"):
        service.deliver(db, pid, settings=no_subject)
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_stored_oauth_consent_is_encrypted_and_its_refresh_token_is_exchanged(db, settings):
    from cryptography.fernet import Fernet
    from google.oauth2.credentials import Credentials

    key = Fernet.generate_key().decode()
    consent = Credentials(token=None, refresh_token="1//refresh-secret", client_id="cid.apps.googleusercontent.com",
                          client_secret="client-secret", token_uri="https://oauth2.googleapis.com/token",
                          scopes=list(SCOPES))
    store_user_credentials(db, consent, key, account_email="sales@agency.example")
    stored = bytes(db.execute("SELECT encrypted FROM google_credentials").fetchone()[0])
    assert b"refresh-secret" not in stored and b"client-secret" not in stored
    with pytest.raises(Exception, match="do not decrypt"):
        load_user_credentials(db, Fernet.generate_key().decode())

    rotated = f"{Fernet.generate_key().decode()},{key}"  # a new key first, the old one still decrypts
    credentials = load_user_credentials(db, rotated)
    oauth = settings.model_copy(update={"google_application_credentials": None, "fernet_key": SecretStr(rotated)})
    pid = make_proposal(db)
    google = Google(oauth, [TOKEN, EMPTY_LIST, FOLDER, DOC, DRAFT], credentials=credentials)
    service.deliver(db, pid, target=google.target, settings=oauth)
    token_request = parse_qs(google.body(0))
    assert token_request["grant_type"] == ["refresh_token"] and token_request["refresh_token"] == ["1//refresh-secret"]
    assert [r[1] for r in google.requests][1:] == ["drive.files.list folder", "drive.files.create folder",
                                                   "drive.files.create upload (multipart)", "gmail.drafts.create"]
    # with only the stored consent, Google is the default target
    assert service.target_name(db, oauth.model_copy(update={"delivery": None})) == "google"


def test_a_remembered_folder_that_was_deleted_is_replaced(db, settings):
    pid = make_proposal(db)
    client = db.execute("SELECT client_id FROM proposals WHERE id = %s", (pid,)).fetchone()[0]
    db.execute("UPDATE clients SET drive_folder_id = 'folder-gone' WHERE id = %s", (client,))
    google = Google(settings, [TOKEN, http_error(404, "notFound", "File not found: folder-gone."), EMPTY_LIST, FOLDER,
                               DOC, DRAFT])
    report = service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests] == [
        "token", "drive.files.create upload (multipart)", "drive.files.list folder", "drive.files.create folder",
        "drive.files.create upload (multipart)", "gmail.drafts.create"]
    assert db.execute("SELECT drive_folder_id FROM clients WHERE id = %s", (client,)).fetchone()[0] == "folder-1"
    assert report["document"]["id"] == "doc-1"
    assert db.execute("SELECT metadata->'delivery'->>'drive_folder_id' FROM proposals").fetchone()[0] == "folder-1"


KILLED_RUN = """
import json, sys, time
import psycopg
from googleapiclient.http import HttpMockSequence
from proposalflow.delivery import service
from proposalflow.delivery.google_credentials import authorized_http, service_account_credentials
from proposalflow.delivery.workspace import GoogleWorkspace
from proposalflow.settings import Settings

db_url, proposal_id, key_file, marker = sys.argv[1:5]
responses = json.loads(sys.stdin.read())

class GoogleThatHangsOnTheDraft(HttpMockSequence):
    def request(self, uri, method="GET", body=None, headers=None, redirections=1, connection_type=None):
        if "/gmail/v1/users/me/drafts" in uri:
            open(marker, "w").write("draft request sent")
            time.sleep(300)  # killed here: the Doc is made and recorded, the draft is in flight
        return super().request(uri, method, body, headers, redirections, connection_type)

settings = Settings(DATABASE_URL=db_url, PROPOSALFLOW_DELIVERY="google", GOOGLE_APPLICATION_CREDENTIALS=key_file,
                    PROPOSALFLOW_GOOGLE_SUBJECT="sales@agency.example")
credentials = service_account_credentials(settings.google_application_credentials, settings.google_subject)
target = GoogleWorkspace(authorized_http(credentials, timeout=5, http=GoogleThatHangsOnTheDraft(responses)),
                         requests_per_second=1000)
with psycopg.connect(db_url, autocommit=True) as conn:
    service.deliver(conn, proposal_id, target=target, settings=settings)
"""


def test_a_process_killed_while_the_draft_is_in_flight_then_rerun_makes_one_doc_and_one_draft(db, db_url, settings,
                                                                                          tmp_path):
    import signal
    import subprocess
    import sys
    import time

    pid = make_proposal(db)
    marker = tmp_path / "draft-requested"
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, db_url, pid,
                                str(settings.google_application_credentials), str(marker)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdin.write(json.dumps([TOKEN, EMPTY_LIST, FOLDER, DOC]))
    process.stdin.close()
    deadline = time.monotonic() + 120
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), process.stderr.read()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    steps = dict(db.execute("SELECT step, state FROM delivery_steps").fetchall())
    assert steps == {"document": "done", "message": "pending"}
    assert db.execute("SELECT status FROM deliveries").fetchone()[0] == "running"

    rerun = Google(settings, [TOKEN, ({"status": "200"}, json.dumps({"resultSizeEstimate": 0})), DRAFT])
    report = service.deliver(db, pid, target=rerun.target, settings=settings)
    # the Doc is not made again; the draft might have been, so it is looked up by its Message-ID first
    assert [r[1] for r in rerun.requests] == ["token", "gmail.drafts.list", "gmail.drafts.create"]
    query = parse_qs(urlsplit(rerun.mock.request_sequence[1][0]).query)["q"][0]
    assert query == f"rfc822msgid:proposal.{pid}.v1.google.message@proposalflow"
    assert report["document"]["id"] == "doc-1" and report["made"] == ["message"]
    assert status.current_status(db, pid) == "sent"


def test_a_send_answered_503_is_checked_and_not_sent_twice(db, settings):
    pid = make_proposal(db)
    allowed = settings.model_copy(update={"allow_send": True})
    gone = http_error(404, "notFound", "Requested entity was not found.")
    google = Google(settings, [TOKEN, EMPTY_LIST, FOLDER, DOC, DRAFT, http_error(503, "backendError", "Backend Error"),
                               gone])
    report = service.deliver(db, pid, send=True, target=google.target, settings=allowed)
    assert [r[1] for r in google.requests][-2:] == ["gmail.drafts.send", "/gmail/v1/users/me/drafts/draft-1"]
    assert report["mail_state"] == "sent" and report["sent"]["note"] == "the draft was already sent"


# ── which 4xx are retried (workspace._execute): only 429 and Google's 403 rate-limit reasons ────────────

def test_400_bad_request_is_not_retried_and_the_step_may_be_made_on_a_rerun(db, settings):
    from proposalflow.errors import IntegrationRejected

    pid = make_proposal(db)
    google = Google(settings, [TOKEN, EMPTY_LIST, FOLDER, http_error(400, "badRequest", "Invalid parents field.")])
    with pytest.raises(IntegrationRejected, match="Google refused to create the Google Doc: HTTP 400 .*badRequest"):
        service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests][-1] == "drive.files.create upload (multipart)" and google.sleeps == []
    assert [r[1] for r in google.requests].count("drive.files.create upload (multipart)") == 1
    # a refusal: Drive made nothing, so the next run makes the Doc without looking it up first
    assert db.execute("SELECT state FROM delivery_steps WHERE step = 'document'").fetchone()[0] == "failed"
    assert status.current_status(db, pid) == "approved"
    rerun = Google(settings, [TOKEN, DOC, DRAFT])
    service.deliver(db, pid, target=rerun.target, settings=settings)
    assert [r[1] for r in rerun.requests] == ["token", "drive.files.create upload (multipart)", "gmail.drafts.create"]


def test_401_is_not_retried_beyond_the_transports_one_token_refresh(db, settings):
    pid = make_proposal(db)
    unauthorised = http_error(401, "authError", "Invalid Credentials")
    google = Google(settings, [TOKEN, unauthorised, TOKEN, unauthorised, TOKEN, unauthorised])
    with pytest.raises(GoogleAuthorizationFailed, match="401 .*not valid any more.*proposalflow google auth"):
        service.deliver(db, pid, target=google.target, settings=settings)
    # google-auth-httplib2 refreshes the token on a 401 (twice at most); proposalflow adds no retry of its own
    assert [r[1] for r in google.requests] == ["token", "drive.files.list folder"] * 3
    assert google.sleeps == [] and google.left() == 0
    assert status.current_status(db, pid) == "approved"


def test_404_on_a_lookup_is_not_retried(db, settings):
    from proposalflow.errors import IntegrationRejected

    pid = make_proposal(db)
    google = Google(settings, [TOKEN, http_error(404, "notFound", "Shared drive not found: parent-1.")])
    with pytest.raises(IntegrationRejected, match="Google refused to look up the client's Drive folder: HTTP 404"):
        service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests] == ["token", "drive.files.list folder"] and google.sleeps == []
    assert db.execute("SELECT status, error LIKE 'folder: IntegrationRejected%%' FROM deliveries").fetchone() == \
        ("failed", True)


def test_403_rate_limit_exceeded_is_retried_like_a_429(db, settings):
    """Drive and Gmail answer some rate limits with 403 and a reason (rateLimitExceeded,
    userRateLimitExceeded): retried, honouring Retry-After — unlike any other 403."""
    pid = make_proposal(db)
    google = Google(settings, [TOKEN, http_error(403, "userRateLimitExceeded", "User Rate Limit Exceeded",
                                                 **{"retry-after": "3"}),
                               EMPTY_LIST, FOLDER, DOC,
                               http_error(403, "rateLimitExceeded", "Rate Limit Exceeded"), DRAFT])
    report = service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests] == [
        "token", "drive.files.list folder", "drive.files.list folder", "drive.files.create folder",
        "drive.files.create upload (multipart)", "gmail.drafts.create", "gmail.drafts.create"]
    assert google.sleeps[0] == 3.0 and len(google.sleeps) == 2 and 0 < google.sleeps[1] <= 60
    assert report["made"] == ["folder", "document", "message"] and status.current_status(db, pid) == "sent"


def test_when_the_attempts_run_out_the_error_says_what_was_tried_how_often_and_the_last_answer(db, settings):
    from proposalflow.errors import IntegrationFailed

    pid = make_proposal(db)
    limited = http_error(429, "rateLimitExceeded", "Quota exceeded", **{"retry-after": "1"})
    google = Google(settings, [TOKEN, limited, limited, limited, limited])
    with pytest.raises(IntegrationFailed) as raised:
        service.deliver(db, pid, target=google.target, settings=settings)
    assert str(raised.value) == ("Google: could not look up the client's Drive folder after 4 attempts "
                                 "(HTTP 429 Quota exceeded)")
    assert google.sleeps == [1.0, 1.0, 1.0] and google.left() == 0  # no wait after the last attempt

    # a create that keeps failing with 503: each retry first looks for what an earlier attempt may have made
    db.execute("UPDATE clients SET drive_folder_id = 'folder-1'")
    unavailable = http_error(503, "backendError", "Backend Error")
    google = Google(settings, [TOKEN, unavailable, EMPTY_LIST, unavailable, EMPTY_LIST, unavailable, EMPTY_LIST,
                               unavailable])
    with pytest.raises(IntegrationFailed, match=r"^Google: could not create the Google Doc after 4 attempts "
                                                r"\(HTTP 503 Backend Error\)$"):
        service.deliver(db, pid, target=google.target, settings=settings)
    assert [r[1] for r in google.requests][1:] == ["drive.files.create upload (multipart)",
                                                   "drive.files.list by-key"] * 3 + \
        ["drive.files.create upload (multipart)"]
    # the Doc may exist after a 503: the step stays pending, so the next run looks it up before making it
    assert db.execute("SELECT state FROM delivery_steps WHERE step = 'document'").fetchone()[0] == "pending"
    assert status.current_status(db, pid) == "approved"
