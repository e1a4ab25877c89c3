"""Authentication and roles over HTTP: 401 vs 403, WWW-Authenticate, users upserted on first sight."""

import time

import jwt

from proposalflow.security import mint_token

from .conftest import SECRET, auth, token_for

PROBLEM = "application/problem+json"


def test_missing_or_bad_credentials_are_401_with_a_bearer_challenge(api):
    expired = mint_token(SECRET, email="a@b.io", role="admin", ttl_seconds=-120)
    wrong_key = mint_token("another-secret-that-is-also-long-enough-xx", email="a@b.io", role="admin")
    wrong_audience = mint_token(SECRET, email="a@b.io", role="admin", audience="service_role")
    for headers, words in (({}, "missing bearer token"), ({"Authorization": "Basic YTpi"}, "missing bearer token"),
                           ({"Authorization": f"Bearer {expired}"}, "expired"),
                           ({"Authorization": f"Bearer {wrong_key}"}, "signature"),
                           ({"Authorization": f"Bearer {wrong_audience}"}, "audience"),
                           ({"Authorization": "Bearer not.a.jwt"}, "malformed")):
        response = api.get("/api/clients", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["content-type"] == PROBLEM and response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["type"] == "https://proposalflow.dev/problems/authentication"
        assert words in response.json()["detail"]


def test_unsigned_alg_none_tokens_are_401_over_http(api):
    """A token with every claim right but `alg: none` (any spelling) and no signature is refused."""
    import base64
    import json

    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = jwt.decode(token_for("admin"), options={"verify_signature": False})
    assert api.get("/api/clients", headers=auth("admin")).status_code == 200  # the same claims, signed, pass
    for alg in ("none", "None", "NONE"):
        unsigned = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims)}."
        response = api.get("/api/clients", headers={"Authorization": f"Bearer {unsigned}"})
        assert response.status_code == 401, (alg, response.text)
        assert response.headers["content-type"] == PROBLEM and response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["type"] == "https://proposalflow.dev/problems/authentication"
        assert api.get("/api/users/me", headers={"Authorization": f"Bearer {unsigned}"}).status_code == 401


def test_insufficient_role_is_403(api, viewer):
    response = api.post("/api/clients", json={"name": "Acme"}, headers=viewer)
    assert response.status_code == 403 and "editor" in response.json()["detail"]
    assert api.get("/api/users", headers=viewer).status_code == 403


def test_users_are_upserted_on_first_sight_and_follow_their_token(api, db):
    first = api.get("/api/users/me", headers=auth("editor", "Ann@Agency.test")).json()
    assert (first["email"], first["role"]) == ("ann@agency.test", "editor")
    row = db.execute("SELECT email, role, last_seen_at FROM users WHERE id = %s", (first["id"],)).fetchone()
    assert row[0] == "ann@agency.test" and row[1] == "editor" and row[2] is not None
    promoted = api.get("/api/users/me", headers=auth("admin", "ann@agency.test")).json()
    assert promoted["id"] == first["id"] and promoted["role"] == "admin"
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 1


def test_a_token_without_a_role_claim_gets_the_stored_role_an_admin_sets(api, admin):
    now = int(time.time())
    plain = jwt.encode({"sub": "3f2b8a4e-1111-4c2b-9d77-0e0e0e0e0e0e", "email": "bob@agency.test",
                        "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 600},
                       SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {plain}"}
    me = api.get("/api/users/me", headers=headers).json()
    assert me["role"] == "viewer"
    assert api.post("/api/clients", json={"name": "Acme"}, headers=headers).status_code == 403
    changed = api.put(f"/api/users/{me['id']}/role", json={"role": "editor"}, headers=admin)
    assert changed.status_code == 200 and changed.json()["role"] == "editor"
    # the caller's cached identity expires within seconds in production; a new app sees it at once
    listed = api.get("/api/users", params={"role": "editor"}, headers=admin).json()
    assert [u["email"] for u in listed["items"]] == ["bob@agency.test"]
    entries = api.get("/api/audit", params={"resource": "users"}, headers=admin).json()["items"]
    assert entries[0]["details"] == {"before": "viewer", "after": "editor"}


def test_users_see_only_themselves_unless_admin(api, admin):
    me = api.get("/api/users/me", headers=auth("viewer", "v@agency.test")).json()
    other = api.get("/api/users/me", headers=auth("editor", "e@agency.test")).json()
    assert api.get(f"/api/users/{me['id']}", headers=auth("viewer", "v@agency.test")).status_code == 200
    assert api.get(f"/api/users/{other['id']}", headers=auth("viewer", "v@agency.test")).status_code == 404
    assert api.get(f"/api/users/{other['id']}", headers=admin).status_code == 200


def test_minted_role_claim_path_is_configurable(db_url):
    from fastapi.testclient import TestClient

    from api.main import create_app

    from .conftest import make_settings

    app = create_app(make_settings(PROPOSALFLOW_JWT_ROLE_CLAIM="user_role"))
    with TestClient(app) as api:
        token = token_for("admin", role_claim="user_role")
        assert api.get("/api/users/me", headers={"Authorization": f"Bearer {token}"}).json()["role"] == "admin"
        # app_metadata.role is not consulted any more
        assert api.get("/api/users/me", headers=auth("admin", "x@agency.test")).json()["role"] == "viewer"


def test_asymmetric_tokens_through_the_projects_jwks(db_url):
    """A project with asymmetric signing keys: PROPOSALFLOW_JWKS_URL only, no shared secret."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from proposalflow.settings import Settings
    from tests.core.test_security import JWKSServer, claims, ec_key

    server = JWKSServer()
    try:
        private, public = ec_key("2026-key")
        server.keys = [public]
        app = create_app(Settings(PROPOSALFLOW_JWKS_URL=server.url, PROPOSALFLOW_ENV="production"))
        with TestClient(app) as api:
            token = jwt.encode(claims(app_metadata={"role": "admin"}), private, algorithm="ES256",
                               headers={"kid": "2026-key"})
            assert api.get("/api/users", headers={"Authorization": f"Bearer {token}"}).status_code == 200
            hs256 = api.get("/api/users", headers=auth("admin"))  # no secret configured: refused
            assert hs256.status_code == 401 and "HS256" in hs256.json()["detail"]
            fetches = server.fetches
            unknown = jwt.encode(claims(), private, algorithm="ES256", headers={"kid": "forged"})
            refused = api.get("/api/users", headers={"Authorization": f"Bearer {unknown}"})
            assert refused.status_code == 401 and "forged" in refused.json()["detail"]
            assert server.fetches == fetches  # within the refresh cooldown: no refetch per forged key id
    finally:
        server.close()
