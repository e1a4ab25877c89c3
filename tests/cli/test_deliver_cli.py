"""`proposalflow deliver` and `proposalflow google auth|status` as a user runs them (subprocesses)."""

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet

from proposalflow.delivery.google_credentials import SCOPES
from tests.delivery_support import make_proposal
from tests.support import PROPOSALFLOW, run_cli


def files_under(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_deliver_twice_writes_once_then_says_already_delivered(cli_env, db):
    pid = make_proposal(db)
    home = Path(cli_env["PROPOSALFLOW_HOME"])
    first = json.loads(run_cli(["deliver", pid, "--json"], cli_env).stdout)
    assert first["target"] == "local" and first["status"] == "sent" and not first["already_delivered"]
    docx_file, html_file, eml_file = first["files"]
    assert docx_file.endswith(".docx") and html_file.endswith(".html") and eml_file.endswith(".eml")
    assert eml_file.startswith(str(home / "outbox"))
    before = files_under(home / "exports") | files_under(home / "outbox")

    second = run_cli(["deliver", pid], cli_env)
    assert "already delivered" in second.stdout and "nothing new" in second.stdout
    assert docx_file in second.stdout and eml_file in second.stdout
    assert files_under(home / "exports") | files_under(home / "outbox") == before


def test_deliver_refuses_a_draft_and_an_unknown_id(cli_env, db):
    pid = make_proposal(db, state="draft")
    result = run_cli(["deliver", pid, "--json"], cli_env, check=False)
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "conflict" and "only approved proposals are delivered" in error["message"]
    plain = run_cli(["deliver", "not-a-proposal"], cli_env, check=False)
    assert plain.returncode == 1 and "does not exist" in plain.stderr


class _TokenEndpoint(BaseHTTPRequestHandler):
    """Google's token endpoint, for the authorization-code exchange."""

    requests: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.requests.append(parse_qs(body))
        answer = json.dumps({"access_token": "ya29.consented", "refresh_token": "1//consented-refresh",
                             "expires_in": 3599, "scope": " ".join(SCOPES), "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def token_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TokenEndpoint)
    _TokenEndpoint.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_google_auth_runs_the_consent_once_and_stores_the_refresh_token_encrypted(cli_env, db, tmp_path,
                                                                                token_endpoint):
    key = Fernet.generate_key().decode()
    secrets = tmp_path / "client_secret.json"
    secrets.write_text(json.dumps({"installed": {
        "client_id": "cid.apps.googleusercontent.com", "client_secret": "desktop-secret",
        "auth_uri": f"{token_endpoint}/auth", "token_uri": f"{token_endpoint}/token",
        "redirect_uris": ["http://localhost"]}}))
    # the test's token endpoint is plain http on loopback; oauthlib refuses that unless told
    env = {**cli_env, "PROPOSALFLOW_FERNET_KEY": key, "OAUTHLIB_INSECURE_TRANSPORT": "1"}
    process = subprocess.Popen([PROPOSALFLOW, "google", "auth", "--client-secrets", str(secrets), "--no-browser",
                                "--timeout", "60", "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        consent_url = None
        for line in process.stderr:
            if line.startswith(f"{token_endpoint}/auth?"):
                consent_url = line.strip()
                break
        assert consent_url, "the consent URL was not printed"
        query = parse_qs(urlsplit(consent_url).query)
        assert set(query["scope"][0].split()) == set(SCOPES)
        assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
        # the browser, after the person consents, is redirected to the local server with a code
        redirect = httpx.get(query["redirect_uri"][0], params={"state": query["state"][0], "code": "4/the-code",
                                                               "scope": " ".join(SCOPES)}, timeout=30)
        assert redirect.status_code == 200 and "authorised" in redirect.text
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert json.loads(stdout) == {"name": "default", "account_email": None, "scopes": sorted(SCOPES), "stored": True}
    assert _TokenEndpoint.requests[0]["code"] == ["4/the-code"]
    assert _TokenEndpoint.requests[0]["grant_type"] == ["authorization_code"]

    stored = bytes(db.execute("SELECT encrypted FROM google_credentials").fetchone()[0])
    assert b"consented-refresh" not in stored and b"desktop-secret" not in stored
    info = json.loads(Fernet(key.encode()).decrypt(stored))
    assert info["refresh_token"] == "1//consented-refresh" and info["client_id"] == "cid.apps.googleusercontent.com"

    status = json.loads(run_cli(["google", "status", "--json"], env).stdout)
    assert status["target"] == "google" and status["stored_consent"]["scopes"] == sorted(SCOPES)


def test_google_auth_without_a_key_refuses_before_any_browser(cli_env, tmp_path):
    result = run_cli(["google", "auth", "--client-secrets", str(tmp_path / "x.json"), "--no-browser"], cli_env,
                     check=False)
    assert result.returncode == 1 and "PROPOSALFLOW_FERNET_KEY is not set" in result.stderr


def test_the_demo_step_approves_through_the_status_machine_and_delivers_locally(db, prefect_api_url, capsys):
    """Only the proposals the propose step reported are approved and delivered; another draft in the
    same database is left alone."""
    from proposalflow.cli.demo import deliver_step
    from proposalflow.proposals import status as machine

    unrelated = make_proposal(db, state="draft", client_name="Someone Else Ltd")
    drafted = make_proposal(db, state="draft")
    reviewed = make_proposal(db, state="in_review", client_name="Brightleaf Dental Group")
    report = {"propose": {"proposals": [{"proposal_id": drafted}, {"proposal_id": reviewed}]}}
    summary = deliver_step(False, report)
    assert (summary["delivered"], summary["already_delivered"], summary["failed"]) == (2, 0, 0)
    assert {r["proposal_id"] for r in summary["deliveries"]} == {drafted, reviewed}
    printed = capsys.readouterr().out
    for report_ in summary["deliveries"]:
        assert report_["target"] == "local" and all(Path(f).is_file() and f in printed for f in report_["files"])
    assert [(h["from"], h["to"], h["actor"]) for h in machine.history(db, drafted)][-3:] == \
        [("draft", "in_review", "demo"), ("in_review", "approved", "demo"), ("approved", "sent", "delivery")]
    assert machine.current_status(db, reviewed) == "sent"
    assert machine.current_status(db, unrelated) == "draft"
    assert all(h["actor"] != "demo" for h in machine.history(db, unrelated))
    assert db.execute("SELECT count(*) FROM deliveries WHERE proposal_id = %s", (unrelated,)).fetchone()[0] == 0

    again = deliver_step(True, report)
    assert (again["delivered"], again["already_delivered"]) == (0, 2)
    assert machine.current_status(db, unrelated) == "draft"


def test_the_batch_report_prints_every_delivered_file_not_only_the_first_ten(db, db_url, tmp_path, capsys):
    """The demo delivers a proposal per sample client (more than ten): every path is printed, whole."""
    from proposalflow.cli.deliver import report_batch_delivery
    from proposalflow.delivery import service
    from proposalflow.settings import Settings
    from tests.delivery_support import make_client

    home = tmp_path / ("a-rather-long-home-folder-name-" * 3)
    settings = Settings(DATABASE_URL=db_url, PROPOSALFLOW_HOME=str(home), PROPOSALFLOW_DELIVERY="local")
    reports = [service.deliver(db, make_proposal(db, make_client(db, f"Client number {n:02d} Incorporated",
                                                                 email=f"c{n}@example.com")), settings=settings)
               for n in range(12)]
    reports[0] = service.deliver(db, reports[0]["proposal_id"], settings=settings)  # a second time
    report_batch_delivery({"delivered": 11, "already_delivered": 1, "failed": 1, "deliveries": reports,
                           "failures": [{"proposal_id": "p-x", "error": "IllegalTransition: is 'draft'"}]})
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert lines[0] == "Delivered: 11 new, 1 already delivered, 1 failed"
    paths = [f for r in reports for f in r["files"]]
    assert len(paths) == 36 and all(f"  {path}" in lines for path in paths)
    assert f"Client number 00 Incorporated — proposal {reports[0]['proposal_id']} v1, email draft to " \
           "c0@example.com (already delivered)" in lines
    assert "failed proposal p-x: IllegalTransition: is 'draft'" in lines
    assert "more" not in printed
