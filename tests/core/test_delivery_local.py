"""Delivery with the local exporters: .docx/.html in the client's export folder, an .eml in the outbox,
exactly once; the approval gate; sending through SMTP only when asked and allowed."""

import email
from email import policy
from pathlib import Path

import docx
import pytest
from pydantic import SecretStr

from proposalflow.delivery import service
from proposalflow.errors import ConfigurationError, IllegalTransition, IntegrationFailed, NotFound, ValidationFailed
from proposalflow.proposals import status
from proposalflow.settings import Settings
from tests.delivery_support import HEADINGS, approve, make_client, make_proposal, save_revision
from tests.fakes.smtp_server import SmtpServer


@pytest.fixture
def settings(db_url, tmp_path) -> Settings:
    return Settings(DATABASE_URL=db_url, PROPOSALFLOW_HOME=str(tmp_path / "home"), PROPOSALFLOW_DELIVERY="local")


def all_files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_local_delivery_writes_docx_html_and_eml_and_moves_the_proposal_to_sent(db, settings):
    pid = make_proposal(db)
    report = service.deliver(db, pid, settings=settings)

    assert report["target"] == "local" and report["status"] == "sent" and report["mail_state"] == "draft"
    assert report["made"] == ["folder", "document", "message"] and report["already_delivered"] is False
    docx_path, html_path, eml_path = map(Path, report["files"])
    assert docx_path.parent.parent == settings.home_dir / "exports" and eml_path.parent == settings.home_dir / "outbox"

    document = docx.Document(str(docx_path))
    headings = [p.text for p in document.paragraphs if p.style.name == "Heading 1"]
    assert headings == ["Executive summary", *HEADINGS, "References"]
    assert (document.paragraphs[0].style.name, document.paragraphs[0].text) == ("Title", "Route optimisation for Northwind")
    assert [p.text for p in document.paragraphs if p.style.name == "Heading 4"] == ["Phase 1"]  # a section's ###
    bullets = [p.text for p in document.paragraphs if p.style.name == "List Bullet"]
    assert bullets == ["Seasonal peaks", "Manual dispatch", "Ageing telematics"]
    assert any("Northwind runs 140 trucks" in p.text and "[1]" in p.text for p in document.paragraphs)

    texts = [p.text for p in document.paragraphs]
    references = texts[texts.index("References") + 1:][:3]
    assert references == ["[1] client website (fleet size) — https://northwind.example/about",
                          "[2] Logistics case study — https://agency.example/cases/logistics",
                          "[3] Rate card"]  # the client sees the source's title, not our file path
    numbered = [p for p in document.paragraphs if p.style.name == "List Number"]
    assert [p.text for p in numbered] == ["Discovery: $18,000", "Pilot: $42,000 [3]"]
    own_list = {p._p.pPr.numPr.numId.val for p in numbered}
    assert len(own_list) == 1 and own_list != {document.styles["List Number"].element.pPr.numPr.numId.val}
    html = html_path.read_text()
    assert "file:///srv" not in html and "chunk" not in html
    assert "<h2 id=\"approach\">Approach</h2>" in html and '<a href="#ref-1">[1]</a>' in html
    assert '<a href="https://agency.example/cases/logistics">' in html

    message = email.message_from_bytes(eml_path.read_bytes(), policy=policy.default)
    assert message["To"] == "maria@northwind.example"
    assert message["Subject"] == "Route optimisation for Northwind"
    body = message.get_body(("plain",)).get_content()
    assert "Hello Maria Anders" in body and f"attached: {docx_path.name}" in body
    attachments = [part.get_filename() for part in message.iter_attachments()]
    assert attachments == [docx_path.name]

    row = db.execute("SELECT status, doc_link, metadata->'delivery' FROM proposals WHERE id = %s", (pid,)).fetchone()
    assert row[0] == "sent" and row[1] == html_path.as_uri()
    assert row[2]["target"] == "local" and row[2]["files"] == report["files"] and row[2]["mail_state"] == "draft"
    assert [(h["from"], h["to"], h["actor"]) for h in status.history(db, pid)][-1] == ("approved", "sent", "delivery")


def test_a_second_delivery_reports_already_delivered_and_writes_nothing(db, settings):
    pid = make_proposal(db)
    first = service.deliver(db, pid, settings=settings)
    before = all_files(settings.home_dir)
    second = service.deliver(db, pid, settings=settings)
    assert second["already_delivered"] is True and second["made"] == []
    assert second["files"] == first["files"] and second["doc_link"] == first["doc_link"]
    assert all_files(settings.home_dir) == before
    steps = db.execute("SELECT step, state, attempts FROM delivery_steps ORDER BY step").fetchall()
    assert steps == [("document", "done", 1), ("message", "done", 1)]


def test_a_crash_after_the_document_step_makes_only_the_email_on_the_rerun(db, settings):
    pid = make_proposal(db)
    # the outbox cannot be written (a file where its folder should be): the email step fails
    settings.home_dir.mkdir(parents=True)
    (settings.home_dir / "outbox").write_text("not a folder")
    with pytest.raises(OSError):
        service.deliver(db, pid, settings=settings)
    assert status.current_status(db, pid) == "approved"
    assert db.execute("SELECT status FROM deliveries").fetchone()[0] == "failed"
    docx_before = all_files(settings.home_dir / "exports")

    (settings.home_dir / "outbox").unlink()
    report = service.deliver(db, pid, settings=settings)
    assert report["made"] == ["message"]  # the document was recorded: not made again
    assert all_files(settings.home_dir / "exports") == docx_before
    assert db.execute("SELECT status, attempts FROM deliveries").fetchone() == ("completed", 2)


@pytest.mark.parametrize("state", ["draft", "in_review", "rejected", "archived"])
def test_only_approved_proposals_are_delivered(db, settings, state):
    pid = make_proposal(db, state=state)
    with pytest.raises(IllegalTransition, match=f"is '{state}': only approved proposals are delivered"):
        service.deliver(db, pid, settings=settings)
    assert not (settings.home_dir / "exports").exists()
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_unknown_proposal_and_a_client_without_email_are_refused_before_any_file(db, settings):
    with pytest.raises(NotFound, match="does not exist"):
        service.deliver(db, "00000000-0000-0000-0000-000000000000", settings=settings)
    client = make_client(db, "Quiet Co", email=None)
    pid = make_proposal(db, client)
    with pytest.raises(ValidationFailed, match="'Quiet Co'.*no valid contact email"):
        service.deliver(db, pid, settings=settings)
    assert not (settings.home_dir / "exports").exists()


def test_send_needs_the_setting_and_an_smtp_url(db, settings, db_url, tmp_path):
    pid = make_proposal(db)
    with pytest.raises(ConfigurationError, match="PROPOSALFLOW_ALLOW_SEND=true"):
        service.deliver(db, pid, send=True, settings=settings)
    allowed = settings.model_copy(update={"allow_send": True})
    with pytest.raises(ConfigurationError, match="needs SMTP_URL"):
        service.deliver(db, pid, send=True, settings=allowed)
    assert status.current_status(db, pid) == "approved"


def test_send_through_smtp_after_a_temporary_failure_then_never_again(db, settings):
    pid = make_proposal(db)
    draft_only = service.deliver(db, pid, settings=settings)
    assert draft_only["mail_state"] == "draft"
    with SmtpServer(temporary_failures=1) as server:
        allowed = settings.model_copy(update={"allow_send": True, "smtp_url": SecretStr(server.url)})
        sent = service.deliver(db, pid, send=True, settings=allowed)  # sends the existing draft, nothing else
        again = service.deliver(db, pid, send=True, settings=allowed)
    assert sent["made"] == ["send"] and sent["mail_state"] == "sent"
    assert again["already_delivered"] is True and again["mail_state"] == "sent"
    assert len(server.messages) == 1 and server.state.commands.count("DATA") == 2  # 451 once, then queued
    received = server.messages[0]
    assert received.envelope_to == ["maria@northwind.example"]
    assert received.message["Subject"] == "Route optimisation for Northwind"
    assert db.execute("SELECT mail_state FROM deliveries").fetchone()[0] == "sent"


def test_delivery_tables_have_row_level_security_and_credentials_are_unreadable_through_rest(db):
    rls = dict(db.execute("SELECT relname, relrowsecurity FROM pg_class WHERE relname IN "
                          "('deliveries', 'delivery_steps', 'google_credentials')").fetchall())
    assert rls == {"deliveries": True, "delivery_steps": True, "google_credentials": True}
    policies = {(r[0], r[1]) for r in db.execute(
        "SELECT c.relname, p.polname FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid "
        "WHERE c.relname IN ('deliveries', 'delivery_steps', 'google_credentials')")}
    assert not {p for p in policies if p[0] == "google_credentials"}  # no policy: no REST caller sees a row
    if db.execute("SELECT to_regprocedure('public.protect_table(regclass, text, text)') IS NOT NULL").fetchone()[0]:
        assert ("deliveries", "pf_read") in policies and ("delivery_steps", "pf_read") in policies


def test_a_send_that_cannot_connect_leaves_the_draft_delivered_and_can_be_tried_again(db, settings):
    pid = make_proposal(db)
    service.deliver(db, pid, settings=settings)
    with SmtpServer() as server:
        port = server.server.server_address[1]
    closed = settings.model_copy(update={"allow_send": True, "smtp_url": SecretStr(f"smtp://127.0.0.1:{port}")})
    with pytest.raises(IntegrationFailed, match="not sent after 3 attempts.*Connection refused"):
        service.deliver(db, pid, send=True, settings=closed)
    assert db.execute("SELECT status, mail_state FROM deliveries").fetchone() == ("completed", "draft")
    assert service.deliver(db, pid, settings=settings)["already_delivered"] is True
    with SmtpServer() as server:
        sent = service.deliver(db, pid, send=True,
                               settings=closed.model_copy(update={"smtp_url": SecretStr(server.url)}))
    assert sent["mail_state"] == "sent" and len(server.messages) == 1  # refused before: safe to send now


def test_an_eml_written_before_a_crash_is_found_by_its_message_id_not_written_again(db, settings):
    pid = make_proposal(db)
    target = service.make_target(db, settings, "local")
    job = service.plan_delivery(db, pid, target="local", settings=settings)
    folder = service.ensure_client_folder(db, target, job)
    document = service.create_document(db, target, job, folder)
    message = service.create_email(db, target, job, document, settings)
    # what a process killed between writing the .eml and recording it leaves behind
    db.execute("UPDATE delivery_steps SET state = 'pending', result = NULL WHERE step = 'message'")
    written = Path(message["eml"]).stat().st_mtime_ns
    report = service.deliver(db, pid, settings=settings)
    assert report["made"] == [] and report["message"]["eml"] == message["eml"]
    assert Path(message["eml"]).stat().st_mtime_ns == written
    assert db.execute("SELECT state, attempts FROM delivery_steps WHERE step = 'message'").fetchone() == ("done", 1)


@pytest.mark.parametrize("reapproved", [True, False])
def test_a_revision_saved_during_the_delivery_is_not_marked_sent(db, settings, reapproved):
    """Version 1 is being delivered when version 2 is saved (and perhaps approved again): finishing the
    version-1 delivery must not mark version 2 `sent`; a new delivery delivers version 2."""
    pid = make_proposal(db)
    target = service.make_target(db, settings, "local")
    job = service.plan_delivery(db, pid, target="local", settings=settings)
    folder = service.ensure_client_folder(db, target, job)
    document = service.create_document(db, target, job, folder)
    message = service.create_email(db, target, job, document, settings)

    assert save_revision(db, pid, "Route optimisation, revised") == 2
    if reapproved:
        approve(db, pid)
    before = status.current_status(db, pid)
    with pytest.raises(IllegalTransition, match=f"proposal {pid}: version 1 was delivered .*but version 2 was saved"):
        service.finish_delivery(db, job, folder=folder, document=document, message=message, sent=None)
    assert status.current_status(db, pid) == before == ("approved" if reapproved else "draft")
    row = db.execute("SELECT doc_link, metadata ? 'delivery' FROM proposals WHERE id = %s", (pid,)).fetchone()
    assert row == (None, False)
    failed = db.execute("SELECT version, status, error FROM deliveries").fetchone()
    assert failed[:2] == (1, "failed") and "version 2 was saved meanwhile" in failed[2]

    if not reapproved:
        with pytest.raises(IllegalTransition, match="is 'draft': only approved proposals are delivered"):
            service.deliver(db, pid, settings=settings)
        approve(db, pid)
    report = service.deliver(db, pid, settings=settings)
    assert report["version"] == 2 and report["already_delivered"] is False and report["status"] == "sent"
    assert all("-v2." in f and Path(f).is_file() for f in report["files"])
    assert status.current_status(db, pid) == "sent"
    assert db.execute("SELECT metadata->'delivery'->>'version' FROM proposals").fetchone()[0] == "2"
    assert service.deliver(db, pid, settings=settings)["already_delivered"] is True


def test_mark_sent_refuses_a_version_that_is_no_longer_current(db):
    pid = make_proposal(db)
    save_revision(db, pid, "Route optimisation, revised")
    approve(db, pid)
    with pytest.raises(IllegalTransition, match="version 1 was delivered, but the current version is 2"):
        status.mark_sent(db, pid, doc_link="file:///x.html", version=1)
    assert status.current_status(db, pid) == "approved"
    assert status.mark_sent(db, pid, doc_link="file:///x.html", version=2).to_status == "sent"


def test_a_sent_proposal_names_the_version_and_target_that_were_in_fact_delivered(db, settings):
    pid = make_proposal(db)
    service.deliver(db, pid, settings=settings)
    with pytest.raises(IllegalTransition, match="version 1 was already delivered to 'local' \\(email draft\\), "
                                                "not to 'google'"):
        service.plan_delivery(db, pid, target="google", settings=settings)
    # a proposal whose current version was never delivered (its status set outside delivery)
    other = make_proposal(db, client_name="Harborview Realty")
    service.deliver(db, other, settings=settings)
    db.execute("UPDATE proposals SET version = 2 WHERE id = %s", (other,))
    with pytest.raises(IllegalTransition, match="version 1 was delivered to 'local' \\(email draft\\); the current "
                                                "version 2 never was"):
        service.plan_delivery(db, other, target="local", settings=settings)


def test_sending_the_draft_of_an_archived_proposal_is_refused(db, settings):
    with SmtpServer() as server:
        pid = make_proposal(db)
        service.deliver(db, pid, settings=settings)
        status.transition(db, pid, "archived", actor="test")
        allowed = settings.model_copy(update={"allow_send": True, "smtp_url": SecretStr(server.url)})
        with pytest.raises(IllegalTransition, match="is 'archived': the email of its delivery"):
            service.deliver(db, pid, send=True, settings=allowed)
    assert server.messages == []


# ── the email template (PROPOSALFLOW_EMAIL_TEMPLATE) and the sender (PROPOSALFLOW_MAIL_FROM) ─────────────

def test_a_custom_template_and_the_from_address_make_the_email(db, settings, tmp_path):
    template = tmp_path / "email.txt"
    template.write_text("Subject: {client_name}: {title} (version {version})\n\n"
                        "Dear {greeting_name},\n\nthe proposal: {link}\n{summary}\n"
                        "Literal braces stay: {{not a placeholder}}\n\n— {sender}\n", encoding="utf-8")
    custom = settings.model_copy(update={"email_template": template,
                                         "mail_from": "Ana Lima <ana@agency.example>"})
    pid = make_proposal(db)
    report = service.deliver(db, pid, settings=custom)
    message = email.message_from_bytes(Path(report["files"][2]).read_bytes(), policy=policy.default)
    assert message["Subject"] == "Northwind Logistics: Route optimisation for Northwind (version 1)"
    assert report["subject"] == message["Subject"]
    assert message["From"] == "Ana Lima <ana@agency.example>" and message["To"] == "maria@northwind.example"
    body = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # the .eml is written with CRLF
    assert body.startswith("Dear Maria Anders,\n\nthe proposal: attached: ")
    assert "We propose a **twelve-week** programme" in body
    assert "Literal braces stay: {not a placeholder}" in body and body.rstrip().endswith("— Ana Lima")


def test_without_a_from_address_the_message_has_no_from_header(db, settings):
    """Gmail (and most SMTP relays) put the authenticated sender there; the body signs as the team."""
    report = service.deliver(db, make_proposal(db), settings=settings)
    message = email.message_from_bytes(Path(report["files"][2]).read_bytes(), policy=policy.default)
    assert message["From"] is None
    assert message.get_body(("plain",)).get_content().rstrip().endswith("Your proposal team")


@pytest.mark.parametrize("text, error", [
    ("Subject: {title} for {budget}\n\nHello {greeting_name}\n",
     r"email template: unknown placeholder \{budget\}; known: \{client_name\}, .*\{sender\}"),
    ("Hello {greeting_name},\n\n{link}\n", r"the first line must be 'Subject: …'"),
    ("Subject: {title}\n\nA lone { brace\n", r"email template: .*write literal braces as \{\{ and \}\}"),
])
def test_a_broken_template_is_refused_before_anything_is_made(db, settings, tmp_path, text, error):
    template = tmp_path / "email.txt"
    template.write_text(text, encoding="utf-8")
    pid = make_proposal(db)
    with pytest.raises(ConfigurationError, match=error):
        service.deliver(db, pid, settings=settings.model_copy(update={"email_template": template}))
    assert not settings.home_dir.exists() or not any(settings.home_dir.rglob("*.docx"))
    assert db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    assert status.current_status(db, pid) == "approved"


def test_a_missing_template_file_is_named(db, settings, tmp_path):
    missing = tmp_path / "nowhere" / "email.txt"
    with pytest.raises(ConfigurationError, match=f"PROPOSALFLOW_EMAIL_TEMPLATE {missing}: No such file"):
        service.deliver(db, make_proposal(db), settings=settings.model_copy(update={"email_template": missing}))
