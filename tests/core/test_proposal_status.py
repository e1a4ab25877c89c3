"""The proposal status machine: legal moves recorded, illegal ones refused with a clear error."""

import pytest

from proposalflow.errors import IllegalTransition, NotFound, ValidationFailed
from proposalflow.proposals import status


@pytest.fixture
def proposal_id(db):
    client = db.execute("INSERT INTO clients (name, natural_key) VALUES ('Acme', 'name:acme') RETURNING id").fetchone()[0]
    return str(db.execute("INSERT INTO proposals (client_id, status, version) VALUES (%s, 'draft', 1) RETURNING id",
                          (client,)).fetchone()[0])


def test_review_approve_send_archive_path_is_recorded(db, proposal_id):
    assert status.transition(db, proposal_id, "in_review", actor="ana").as_dict() == \
        {"proposal_id": proposal_id, "from": "draft", "to": "in_review"}
    status.transition(db, proposal_id, "approved", actor="ben", note="looks good")
    status.mark_sent(db, proposal_id, doc_link="https://docs.example/d/1")
    status.mark_sent(db, proposal_id, doc_link="https://docs.example/d/2")  # delivering again: idempotent
    status.transition(db, proposal_id, "archived")
    row = db.execute("SELECT status, doc_link FROM proposals WHERE id = %s", (proposal_id,)).fetchone()
    assert row == ("archived", "https://docs.example/d/2")
    moves = [(h["from"], h["to"], h["actor"]) for h in status.history(db, proposal_id)]
    assert moves == [("draft", "in_review", "ana"), ("in_review", "approved", "ben"),
                     ("approved", "sent", "delivery"), ("sent", "archived", None)]


def test_illegal_moves_are_refused_and_change_nothing(db, proposal_id):
    with pytest.raises(IllegalTransition, match="cannot move from 'draft' to 'approved'.*in_review"):
        status.transition(db, proposal_id, "approved")
    with pytest.raises(IllegalTransition, match="only delivery"):
        status.transition(db, proposal_id, "sent")
    with pytest.raises(IllegalTransition, match="cannot move from 'draft' to 'sent'"):
        status.mark_sent(db, proposal_id)  # delivery too needs an approved proposal
    with pytest.raises(IllegalTransition, match="set by a generation run"):
        status.transition(db, proposal_id, "failed")
    with pytest.raises(ValidationFailed, match="'shipped' is not a proposal status"):
        status.transition(db, proposal_id, "shipped")
    status.transition(db, proposal_id, "archived")
    with pytest.raises(IllegalTransition, match="'archived' is final"):
        status.transition(db, proposal_id, "draft")
    assert status.current_status(db, proposal_id) == "archived"
    assert len(status.history(db, proposal_id)) == 1


def test_rejected_goes_back_to_draft_and_a_new_version_reopens_an_approved_one(db, proposal_id):
    status.transition(db, proposal_id, "in-review")
    status.transition(db, proposal_id, "rejected")
    status.transition(db, proposal_id, "draft")
    status.transition(db, proposal_id, "in_review")
    status.transition(db, proposal_id, "approved")
    with db.transaction():
        status.content_changed(db, proposal_id, 2, actor="revision")
    assert status.current_status(db, proposal_id) == "draft"
    assert status.history(db, proposal_id)[-1]["version"] == 2


def test_unknown_proposal_is_not_found(db):
    with pytest.raises(NotFound, match="does not exist"):
        status.transition(db, "00000000-0000-0000-0000-000000000000", "in_review")
    with pytest.raises(NotFound):
        status.transition(db, "not-an-id", "in_review")
