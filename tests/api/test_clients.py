"""/api/clients: CRUD, validation like ingestion, keyset pages, filters, sort, delete rules, audit."""

import uuid

import pytest

from proposalflow import audit

PROBLEM = "application/problem+json"


def create(api, headers, **body):
    response = api.post("/api/clients", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_normalises_like_ingestion_and_reads_back(api, editor, viewer):
    client = create(api, editor, name="  Acme   Corp ", website="WWW.Acme.com/", email="Sales@ACME.com",
                    phone="+44 20 7946 0000", contact_info={"Industry": "Widgets"})
    assert client["website"] == "https://acme.com" and client["domain"] == "acme.com"
    assert client["email"] == "sales@acme.com" and client["name"] == "Acme Corp"
    assert client["natural_key"] == "domain:acme.com" and client["source"] == "api"
    assert client["contact_info"]["Industry"] == "Widgets"
    fetched = api.get(f"/api/clients/{client['id']}", headers=viewer)
    assert fetched.status_code == 200 and fetched.json() == client


def test_validation_errors_are_problem_json_naming_each_field(api, editor):
    response = api.post("/api/clients", json={"name": "Bad", "email": "not-an-email", "website": "http://localhost"},
                        headers=editor)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "https://proposalflow.dev/problems/validation" and problem["status"] == 422
    fields = {e["field"]: e["message"] for e in problem["errors"]}
    assert "not-an-email" in fields["email"] and "localhost" in fields["website"]
    assert problem["request_id"] == response.headers["x-request-id"]

    missing = api.post("/api/clients", json={"website": "acme.com"}, headers=editor).json()
    assert [e["field"] for e in missing["errors"]] == ["name"]


def test_server_owned_fields_cannot_be_assigned(api, editor):
    response = api.post("/api/clients", json={"name": "Acme", "id": str(uuid.uuid4()), "created_at": "2020-01-01",
                                              "enriched_data": {"x": 1}}, headers=editor)
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"id", "created_at", "enriched_data"}
    assert all(e["message"] == "is not a field you can set" for e in response.json()["errors"])


def test_duplicate_natural_key_is_a_409_naming_the_other_client(api, editor):
    first = create(api, editor, name="Acme", website="acme.com")
    response = api.post("/api/clients", json={"name": "Acme Again", "website": "https://www.acme.com"}, headers=editor)
    assert response.status_code == 409 and response.headers["content-type"] == PROBLEM
    assert first["id"] in response.json()["detail"] and "acme.com" in response.json()["detail"]


def test_put_replaces_validates_and_detects_conflicts(api, editor):
    acme = create(api, editor, name="Acme", website="acme.com", phone="123")
    beta = create(api, editor, name="Beta", website="beta.io")
    replaced = api.put(f"/api/clients/{acme['id']}", json={"name": "Acme Ltd", "website": "acme.co.uk"}, headers=editor)
    assert replaced.status_code == 200
    body = replaced.json()
    assert (body["name"], body["domain"], body["phone"]) == ("Acme Ltd", "acme.co.uk", None)
    assert body["created_at"] == acme["created_at"] and body["updated_at"] > acme["updated_at"]
    assert api.put(f"/api/clients/{acme['id']}", json={"name": "x", "email": "nope"}, headers=editor).status_code == 422
    clash = api.put(f"/api/clients/{acme['id']}", json={"name": "Acme", "website": "beta.io"}, headers=editor)
    assert clash.status_code == 409 and beta["id"] in clash.json()["detail"]
    missing = api.put(f"/api/clients/{uuid.uuid4()}", json={"name": "Ghost"}, headers=editor)
    assert missing.status_code == 404 and missing.json()["type"].endswith("/not-found")


def test_pages_cover_every_client_exactly_once_in_order(api, editor, viewer, db):
    names = [f"Client {i:03d}" for i in range(23)]
    for name in names:
        create(api, editor, name=name)
    for sort, expected in (("name", sorted(names)), ("-name", sorted(names, reverse=True))):
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": 5, "sort": sort, **({"cursor": cursor} if cursor else {})}
            response = api.get("/api/clients", params=params, headers=viewer)
            assert response.status_code == 200
            page = response.json()
            seen += [c["name"] for c in page["items"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                assert "link" not in response.headers
                break
            assert 'rel="next"' in response.headers["link"]
        assert seen == expected and pages == 5

    # rows added before the cursor's position do not shift the next page (keyset, not offset)
    first = api.get("/api/clients", params={"limit": 5, "sort": "created_at"}, headers=viewer).json()
    create(api, editor, name="Aaa Newcomer")
    second = api.get("/api/clients", params={"limit": 5, "sort": "created_at", "cursor": first["next_cursor"]},
                     headers=viewer).json()
    assert [c["name"] for c in second["items"]] == names[5:10]


def test_limit_is_capped_and_bad_cursors_are_422(api, editor, viewer):
    for i in range(3):
        create(api, editor, name=f"C{i}")
    assert api.get("/api/clients", params={"limit": 9999}, headers=viewer).json()["limit"] == 200
    page = api.get("/api/clients", params={"limit": 1}, headers=viewer).json()
    wrong_sort = api.get("/api/clients", params={"cursor": page["next_cursor"], "sort": "-name"}, headers=viewer)
    assert wrong_sort.status_code == 422 and wrong_sort.json()["errors"][0]["field"] == "cursor"
    garbage = api.get("/api/clients", params={"cursor": "!!!"}, headers=viewer)
    assert garbage.status_code == 422
    assert api.get("/api/clients", params={"sort": "password"}, headers=viewer).status_code == 422


def test_filters(api, editor, viewer, db):
    create(api, editor, name="Acme Corp", website="acme.com")
    create(api, editor, name="Beta 100% Ltd", website="beta.io")
    enriched = create(api, editor, name="Gamma", website="gamma.dev")
    db.execute("UPDATE clients SET enriched_data = '{\"summary\": \"x\"}' WHERE id = %s", (enriched["id"],))

    def names(**params):
        return [c["name"] for c in api.get("/api/clients", params=params, headers=viewer).json()["items"]]

    assert names(name="acme") == ["Acme Corp"]
    assert names(name="100%") == ["Beta 100% Ltd"]  # LIKE wildcards are literal
    assert names(name="_") == []
    assert names(domain="https://www.BETA.io/") == ["Beta 100% Ltd"]
    assert names(enrichment="enriched") == ["Gamma"]
    assert names(enrichment="not_enriched") == ["Acme Corp", "Beta 100% Ltd"]


def test_delete_refuses_clients_with_proposals_unless_admin_cascades(api, editor, admin, db):
    client = create(api, editor, name="Acme")
    db.execute("INSERT INTO proposals (client_id, status) VALUES (%s, 'draft')", (client["id"],))
    refused = api.delete(f"/api/clients/{client['id']}", headers=editor)
    assert refused.status_code == 409 and "1 proposal" in refused.json()["detail"]
    forbidden = api.delete(f"/api/clients/{client['id']}", params={"cascade": "true"}, headers=editor)
    assert forbidden.status_code == 403 and forbidden.json()["type"].endswith("/forbidden")
    done = api.delete(f"/api/clients/{client['id']}", params={"cascade": "true"}, headers=admin)
    assert done.status_code == 200 and done.json()["proposals_deleted"] == 1
    assert db.execute("SELECT count(*) FROM proposals").fetchone()[0] == 0
    assert api.get(f"/api/clients/{client['id']}", headers=admin).status_code == 404

    plain = create(api, editor, name="Solo")
    assert api.delete(f"/api/clients/{plain['id']}", headers=editor).status_code == 200


def test_every_write_leaves_an_audit_row_with_the_request_id(api, editor, db):
    response = api.post("/api/clients", json={"name": "Acme"}, headers={**editor, "X-Request-ID": "req-123"})
    client_id = response.json()["id"]
    api.put(f"/api/clients/{client_id}", json={"name": "Acme 2"}, headers=editor)
    api.delete(f"/api/clients/{client_id}", headers=editor)
    rows = audit.entries(db, resource="clients", resource_id=client_id)
    assert [r.action for r in rows] == ["delete", "update", "create"]
    create_row = rows[-1]
    assert create_row.request_id == "req-123" and create_row.actor_email == "editor@agency.test"
    assert create_row.actor_role == "editor" and create_row.details["name"] == "Acme"
    # a refused write leaves nothing: neither the change nor an audit row
    api.post("/api/clients", json={"name": "Bad", "email": "x"}, headers=editor)
    assert db.execute("SELECT count(*) FROM audit_log WHERE resource = 'clients'").fetchone()[0] == 3


def test_unknown_routes_and_malformed_ids_are_problem_json(api, viewer):
    unknown = api.get(f"/api/clients/{uuid.uuid4()}/nope", headers=viewer)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == PROBLEM
    assert unknown.json()["type"].endswith("/not-found")
    malformed = api.get("/api/clients/nope", headers=viewer)
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "client_id"
    wrong_method = api.patch("/api/clients", headers=viewer)
    assert wrong_method.status_code == 405 and wrong_method.headers["content-type"] == PROBLEM
