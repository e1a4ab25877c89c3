"""Token verification edge cases, against a local JWKS server that speaks the real protocol."""

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from proposalflow.errors import AuthenticationFailed, ConfigurationError, IntegrationFailed
from proposalflow.security import TokenVerifier, mint_token, parse_duration, role_from_claims, user_id_for

SECRET = "a-test-secret-of-more-than-thirty-two-characters"


class JWKSServer:
    """Serves /jwks.json from `self.keys` (public JWKs) and counts fetches."""

    def __init__(self):
        self.keys: list[dict] = []
        self.fetches = 0
        self.status = 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.fetches += 1
                body = json.dumps({"keys": server.keys}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/auth/v1/.well-known/jwks.json"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks():
    server = JWKSServer()
    yield server
    server.close()


def rsa_key(kid: str):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True) | {"kid": kid, "alg": "RS256", "use": "sig"}
    return private, public


def ec_key(kid: str):
    private = ec.generate_private_key(ec.SECP256R1())
    public = ECAlgorithm.to_jwk(private.public_key(), as_dict=True) | {"kid": kid, "alg": "ES256", "use": "sig"}
    return private, public


def claims(**overrides):
    now = int(time.time())
    document = {"sub": str(uuid.uuid4()), "email": "Ann@Agency.test", "aud": "authenticated", "role": "authenticated",
                "iat": now, "exp": now + 600, "app_metadata": {"role": "editor"}}
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_hs256_token_gives_the_principal_with_its_role():
    verifier = TokenVerifier(secret=SECRET)
    document = claims()
    principal = verifier.verify(jwt.encode(document, SECRET, algorithm="HS256"))
    assert principal.subject == document["sub"] and principal.user_id == uuid.UUID(document["sub"])
    assert principal.email == "ann@agency.test" and principal.claimed_role == "editor"


def test_minted_token_round_trips_and_carries_the_role_where_configured():
    token = mint_token(SECRET, email="x@y.io", role="admin", ttl_seconds=60, role_claim="user_role")
    principal = TokenVerifier(secret=SECRET, role_claim="user_role").verify(token)
    assert principal.claimed_role == "admin" and principal.claims["user_role"] == "admin"
    assert principal.claims["exp"] - principal.claims["iat"] == 60


@pytest.mark.parametrize("document, message", [
    (claims(exp=int(time.time()) - 120), "expired"),
    (claims(aud="someone-else"), "audience"),
    (claims(exp=None), "'exp'"),
    (claims(sub=None), "'sub'"),
    (claims(nbf=int(time.time()) + 3600), "not yet valid"),
])
def test_bad_claims_are_refused(document, message):
    with pytest.raises(AuthenticationFailed, match=message):
        TokenVerifier(secret=SECRET).verify(jwt.encode(document, SECRET, algorithm="HS256"))


def test_wrong_signature_and_wrong_issuer_are_refused():
    verifier = TokenVerifier(secret=SECRET, issuer="https://ref.supabase.co/auth/v1")
    with pytest.raises(AuthenticationFailed, match="signature"):
        verifier.verify(jwt.encode(claims(iss="https://ref.supabase.co/auth/v1"), "another-secret-" * 3, algorithm="HS256"))
    with pytest.raises(AuthenticationFailed, match="issuer"):
        verifier.verify(jwt.encode(claims(iss="https://evil.example/auth/v1"), SECRET, algorithm="HS256"))
    assert verifier.verify(jwt.encode(claims(iss="https://ref.supabase.co/auth/v1"), SECRET, algorithm="HS256"))


def test_alg_none_and_garbage_are_refused():
    unsigned = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
    with pytest.raises(AuthenticationFailed, match="alg: none"):
        TokenVerifier(secret=SECRET).verify(unsigned)
    for garbage in ("", "abc", "a.b.c", "Bearer x"):
        with pytest.raises(AuthenticationFailed):
            TokenVerifier(secret=SECRET).verify(garbage)


def test_rs256_and_es256_tokens_verify_through_the_jwks(jwks):
    rsa_private, rsa_public = rsa_key("rsa-1")
    ec_private, ec_public = ec_key("ec-1")
    jwks.keys = [rsa_public, ec_public]
    verifier = TokenVerifier(jwks_url=jwks.url)
    assert verifier.verify(jwt.encode(claims(), rsa_private, algorithm="RS256", headers={"kid": "rsa-1"})).claimed_role == "editor"
    assert verifier.verify(jwt.encode(claims(), ec_private, algorithm="ES256", headers={"kid": "ec-1"}))
    assert jwks.fetches == 1  # cached
    # the header's algorithm must be the key's
    with pytest.raises(AuthenticationFailed):
        verifier.verify(jwt.encode(claims(), rsa_private, algorithm="RS384", headers={"kid": "rsa-1"}))
    # an HS256 token is refused outright when no shared secret is configured
    with pytest.raises(AuthenticationFailed, match="HS256 tokens are not accepted"):
        verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))


def test_hs_rs_algorithm_confusion_is_refused(jwks):
    private, public = rsa_key("rsa-1")
    jwks.keys = [public]
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    payload = b64(json.dumps(claims()).encode())
    import hashlib
    import hmac

    signature = b64(hmac.new(pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    forged = f"{header}.{payload}.{signature}"
    with pytest.raises(AuthenticationFailed):
        TokenVerifier(jwks_url=jwks.url).verify(forged)
    with pytest.raises(AuthenticationFailed, match="signature"):
        TokenVerifier(secret=SECRET, jwks_url=jwks.url).verify(forged)


def test_jwks_rotation_is_picked_up_and_unknown_kids_cannot_hammer_the_jwks(jwks):
    old_private, old_public = rsa_key("2024-01")
    new_private, new_public = rsa_key("2024-02")
    jwks.keys = [old_public]
    verifier = TokenVerifier(jwks_url=jwks.url, jwks_refresh_cooldown=1.0)
    assert verifier.verify(jwt.encode(claims(), old_private, algorithm="RS256", headers={"kid": "2024-01"}))
    assert jwks.fetches == 1

    jwks.keys = [new_public]  # the project rotates its signing key
    time.sleep(1.1)  # past the refresh cooldown
    assert verifier.verify(jwt.encode(claims(), new_private, algorithm="RS256", headers={"kid": "2024-02"}))
    assert jwks.fetches == 2
    with pytest.raises(AuthenticationFailed, match="not in the JWKS"):  # the retired key no longer verifies
        verifier.verify(jwt.encode(claims(), old_private, algorithm="RS256", headers={"kid": "2024-01"}))

    before = jwks.fetches
    for i in range(20):  # random key ids: at most one refetch per cooldown
        with pytest.raises(AuthenticationFailed):
            verifier.verify(jwt.encode(claims(), new_private, algorithm="RS256", headers={"kid": f"bogus-{i}"}))
    assert jwks.fetches - before <= 1


def test_jwks_outage_is_an_integration_failure(jwks):
    private, public = rsa_key("k")
    jwks.status = 503
    with pytest.raises(IntegrationFailed, match="JWKS"):
        TokenVerifier(jwks_url=jwks.url).verify(jwt.encode(claims(), private, algorithm="RS256", headers={"kid": "k"}))


def test_role_claims_and_subjects():
    assert role_from_claims({"app_metadata": {"role": "admin"}, "user_role": "viewer"}, "app_metadata.role,user_role") == "admin"
    assert role_from_claims({"user_role": "viewer"}, "app_metadata.role,user_role") == "viewer"
    assert role_from_claims({"app_metadata": {"role": "root"}}, "app_metadata.role") is None
    assert role_from_claims({"role": "authenticated"}, "app_metadata.role,user_role") is None
    assert user_id_for("auth0|123", "https://a") == user_id_for("auth0|123", "https://a") != user_id_for("auth0|123", "https://b")
    with pytest.raises(ConfigurationError):
        TokenVerifier()


def test_durations():
    assert [parse_duration(t) for t in ("90s", "15m", "1h", "7d", "30")] == [90, 900, 3600, 604800, 30]
    with pytest.raises(ValueError):
        parse_duration("soon")
