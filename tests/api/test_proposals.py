"""/api/proposals: drafts, keyset pages, the status machine, revisions (conversation turns)."""

import uuid

import pytest

from proposalflow import audit
from proposalflow.proposals import service


@pytest.fixture
def client_id(api, editor):
    return api.post("/api/clients", json={"name": "Acme", "website": "acme.com"}, headers=editor).json()["id"]


@pytest.fixture
def generated(db, client_id):
    """A proposal with one generated version (offline composer, through the core)."""
    result = service.generate(db, client_id, brief="A new website with a shop")
    return result.proposal_id


def test_create_list_get_update_delete(api, editor, viewer, client_id, db):
    created = api.post("/api/proposals", json={"client_id": client_id, "title": "Website 2027", "template": "Short"},
                       headers=editor)
    assert created.status_code == 201, created.text
    proposal = created.json()
    assert (proposal["status"], proposal["version"], proposal["template"]) == ("draft", 0, "short")
    assert proposal["client_name"] == "Acme"

    record = api.get(f"/api/proposals/{proposal['id']}", headers=viewer).json()
    assert record["content"] is None and record["title"] == "Website 2027"

    updated = api.put(f"/api/proposals/{proposal['id']}", json={"title": "Website & shop", "brief": "Add a shop"},
                      headers=editor)
    assert updated.status_code == 200 and updated.json()["title"] == "Website & shop"
    assert updated.json()["template"] is None  # a full replace: left out is cleared

    for body in ({"status": "approved"}, {"content": {}}, {"version": 3}, {"doc_link": "https://x"}, {"client_id": client_id}):
        refused = api.put(f"/api/proposals/{proposal['id']}", json=body, headers=editor)
        assert refused.status_code == 422, body
    assert api.put(f"/api/proposals/{proposal['id']}", json={"template": "nope"}, headers=editor).status_code == 422
    assert api.post("/api/proposals", json={"client_id": str(uuid.uuid4())}, headers=editor).status_code == 422

    assert api.delete(f"/api/proposals/{proposal['id']}", headers=editor).status_code == 200
    assert api.get(f"/api/proposals/{proposal['id']}", headers=viewer).status_code == 404
    assert [e.action for e in audit.entries(db, resource="proposals", resource_id=proposal["id"])] == \
        ["delete", "update", "create"]


def test_list_filters_by_client_and_status_across_pages(api, editor, viewer, client_id):
    other = api.post("/api/clients", json={"name": "Beta"}, headers=editor).json()["id"]
    ids = [api.post("/api/proposals", json={"client_id": client_id}, headers=editor).json()["id"] for _ in range(5)]
    api.post("/api/proposals", json={"client_id": other}, headers=editor)
    api.post(f"/api/proposals/{ids[0]}/status", json={"status": "in_review"}, headers=editor)

    seen, cursor = [], None
    while True:
        page = api.get("/api/proposals", params={"client_id": client_id, "limit": 2, "sort": "created_at",
                                                 **({"cursor": cursor} if cursor else {})}, headers=viewer).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    in_review = api.get("/api/proposals", params={"status": "in_review"}, headers=viewer).json()["items"]
    assert [p["id"] for p in in_review] == [ids[0]]
    assert api.get("/api/proposals", params={"status": "lost"}, headers=viewer).status_code == 422


def test_status_route_follows_the_status_machine(api, editor, viewer, client_id, db):
    pid = api.post("/api/proposals", json={"client_id": client_id}, headers=editor).json()["id"]
    moved = api.post(f"/api/proposals/{pid}/status", json={"status": "in_review", "note": "please check"}, headers=editor)
    assert moved.status_code == 200
    body = moved.json()
    assert (body["from_status"], body["to_status"], body["changed"]) == ("draft", "in_review", True)
    assert set(body["allowed_next"]) == {"approved", "rejected", "draft"}

    illegal = api.post(f"/api/proposals/{pid}/status", json={"status": "archived"}, headers=editor)
    assert illegal.status_code == 409 and "in_review" in illegal.json()["detail"]
    system_only = api.post(f"/api/proposals/{pid}/status", json={"status": "sent"}, headers=editor)
    assert system_only.status_code == 409 and "delivery" in system_only.json()["detail"]
    assert api.post(f"/api/proposals/{pid}/status", json={"status": "approved"}, headers=viewer).status_code == 403
    assert api.post(f"/api/proposals/{uuid.uuid4()}/status", json={"status": "approved"}, headers=editor).status_code == 404

    history = db.execute("SELECT from_status, to_status, actor, note FROM proposal_status_history "
                         "WHERE proposal_id = %s ORDER BY id", (pid,)).fetchall()
    assert history == [("draft", "in_review", "editor@agency.test", "please check")]
    [entry] = audit.entries(db, resource="proposals", resource_id=pid, limit=10)[:1]
    assert entry.action == "status" and entry.details["after"] == "in_review"


def test_revise_is_a_conversation_turn_that_saves_a_new_version(api, editor, viewer, client_id, db):
    from tests.api.test_knowledge import PRICING, SEO

    for title, category, content in (("Pricing", "pricing", PRICING), ("SEO", "services", SEO)):
        assert api.post("/api/knowledge", json={"title": title, "category": category, "content": content},
                        headers=editor).status_code == 201
    generated = service.generate(db, client_id, brief="A new website with a shop").proposal_id
    db.execute("UPDATE proposals SET status = 'in_review' WHERE id = %s", (generated,))
    required = api.post(f"/api/proposals/{generated}/revise",
                        json={"instruction": "Remove the relevant experience section"}, headers=editor)
    assert required.status_code == 422 and "Relevant experience" in required.json()["detail"]  # a required section
    response = api.post(f"/api/proposals/{generated}/revise", json={"instruction": "Make the pricing shorter"},
                        headers=editor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["revision"]["version"] == 2 and body["proposal"]["version"] == 2
    assert body["proposal"]["status"] == "draft"  # new words need a new review
    assert body["proposal"]["content"]["sections"]
    versions = api.get(f"/api/proposals/{generated}/versions", headers=viewer).json()
    assert [(v["version"], v["kind"]) for v in versions] == [(1, "generated"), (2, "revised")]
    messages = api.get(f"/api/proposals/{generated}/messages", headers=viewer).json()
    assert messages[0] == {**messages[0], "role": "user", "content": "Make the pricing shorter"}
    assert "rewrote 'Investment and timeline'" in body["revision"]["diff_summary"]
    first = api.get(f"/api/proposals/{generated}", params={"version": 1}, headers=viewer).json()
    assert first["version"] == 1

    unchanged = api.post(f"/api/proposals/{generated}/revise", json={"instruction": "Keep it in English"}, headers=editor)
    assert unchanged.status_code == 200 and unchanged.json()["proposal"]["version"] == 2  # nothing to change
    assert api.post(f"/api/proposals/{generated}/revise", json={"instruction": ""}, headers=editor).status_code == 422
    db.execute("UPDATE proposals SET status = 'sent' WHERE id = %s", (generated,))
    sent = api.post(f"/api/proposals/{generated}/revise", json={"instruction": "More detail"}, headers=editor)
    assert sent.status_code == 409
    assert api.delete(f"/api/proposals/{generated}", headers=editor).status_code == 409  # archive a sent one
