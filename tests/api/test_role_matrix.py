"""Every route × every role: who gets 401, who gets 403, who gets through.

Requests carry an invalid body or an unknown id, so a caller who gets through meets a 404/422 (or
a 200 for reads) and nothing is changed or started. The matrix must name every route of the app.
"""

import uuid

import pytest

from .conftest import auth

ID = str(uuid.uuid4())
INVALID = {"no": "such field"}
ROLES = ("viewer", "editor", "admin")

# (method, path as in OpenAPI, concrete path, least role or None for public, body)
MATRIX = [
    ("GET", "/healthz", "/healthz", None, None),
    ("GET", "/readyz", "/readyz", None, None),
    ("GET", "/metrics", "/metrics", None, None),
    ("GET", "/api/clients", "/api/clients", "viewer", None),
    ("POST", "/api/clients", "/api/clients", "editor", INVALID),
    ("GET", "/api/clients/{client_id}", f"/api/clients/{ID}", "viewer", None),
    ("PUT", "/api/clients/{client_id}", f"/api/clients/{ID}", "editor", INVALID),
    ("DELETE", "/api/clients/{client_id}", f"/api/clients/{ID}", "editor", None),
    ("DELETE", "/api/clients/{client_id}", f"/api/clients/{ID}?cascade=true", "admin", None),
    ("GET", "/api/knowledge/search", "/api/knowledge/search?q=pricing", "viewer", None),
    ("POST", "/api/knowledge/upload", "/api/knowledge/upload", "editor", INVALID),
    ("POST", "/api/knowledge", "/api/knowledge", "editor", INVALID),
    ("GET", "/api/knowledge", "/api/knowledge", "viewer", None),
    ("GET", "/api/knowledge/{document_id}", f"/api/knowledge/{ID}", "viewer", None),
    ("GET", "/api/knowledge/{document_id}/original", f"/api/knowledge/{ID}/original", "viewer", None),
    ("PUT", "/api/knowledge/{document_id}", f"/api/knowledge/{ID}", "editor", INVALID),
    ("DELETE", "/api/knowledge/{document_id}", f"/api/knowledge/{ID}", "editor", None),
    ("POST", "/api/proposals", "/api/proposals", "editor", INVALID),
    ("GET", "/api/proposals", "/api/proposals", "viewer", None),
    ("GET", "/api/proposals/{proposal_id}", f"/api/proposals/{ID}", "viewer", None),
    ("PUT", "/api/proposals/{proposal_id}", f"/api/proposals/{ID}", "editor", INVALID),
    ("DELETE", "/api/proposals/{proposal_id}", f"/api/proposals/{ID}", "editor", None),
    ("POST", "/api/proposals/{proposal_id}/status", f"/api/proposals/{ID}/status", "editor", INVALID),
    ("POST", "/api/proposals/{proposal_id}/revise", f"/api/proposals/{ID}/revise", "editor", INVALID),
    ("GET", "/api/proposals/{proposal_id}/versions", f"/api/proposals/{ID}/versions", "viewer", None),
    ("GET", "/api/proposals/{proposal_id}/messages", f"/api/proposals/{ID}/messages", "viewer", None),
    ("GET", "/api/flows", "/api/flows", "viewer", None),
    ("POST", "/api/flows/ingest-clients/runs", "/api/flows/ingest-clients/runs", "editor", INVALID),
    ("POST", "/api/flows/enrich-clients/runs", "/api/flows/enrich-clients/runs", "editor", INVALID),
    ("POST", "/api/flows/embed-knowledge/runs", "/api/flows/embed-knowledge/runs", "editor", INVALID),
    ("POST", "/api/flows/generate-proposal/runs", "/api/flows/generate-proposal/runs", "editor", INVALID),
    ("POST", "/api/flows/deliver-proposal/runs", "/api/flows/deliver-proposal/runs", "editor", INVALID),
    ("GET", "/api/runs", "/api/runs", "viewer", None),
    ("GET", "/api/runs/{run_id}", f"/api/runs/{ID}", "viewer", None),
    ("GET", "/api/users/me", "/api/users/me", "viewer", None),
    ("GET", "/api/users", "/api/users", "admin", None),
    ("GET", "/api/users/{user_id}", f"/api/users/{ID}", "viewer", None),
    ("PUT", "/api/users/{user_id}/role", f"/api/users/{ID}/role", "admin", INVALID),
    ("GET", "/api/audit", "/api/audit", "admin", None),
]


def test_the_matrix_covers_every_route(api):
    documented = {(method.upper(), path) for path, item in api.app.openapi()["paths"].items() for method in item}
    assert documented == {(m, p) for m, p, *_ in MATRIX}


@pytest.mark.parametrize("method, template, path, least, body", MATRIX,
                         ids=[f"{m} {p}" for m, _, p, *_ in MATRIX])
def test_route_by_role(api, method, template, path, least, body):
    kwargs = {"json": body} if body is not None else {}
    anonymous = api.request(method, path, **kwargs)
    if least is None:
        assert anonymous.status_code == 200, anonymous.text
        return
    assert anonymous.status_code == 401, anonymous.text
    for role in ROLES:
        response = api.request(method, path, headers=auth(role), **kwargs)
        if ROLES.index(role) < ROLES.index(least):
            assert response.status_code == 403, (role, response.text)
        else:
            assert response.status_code in (200, 404, 422), (role, response.status_code, response.text)
