"""Bearer tokens as Supabase Auth issues them: verification, the caller's role, and local minting.

Verification:
- HS256 with the project's JWT secret (`PROPOSALFLOW_JWT_SECRET`), and/or asymmetric keys (RS*/PS*/ES*/EdDSA)
  from the project's JWKS URL (`PROPOSALFLOW_JWKS_URL`), cached for `PROPOSALFLOW_JWKS_CACHE_SECONDS`
  and re-fetched (at most once per cooldown) when a token names a key id the cache does not know,
  which is how key rotation reaches us.
- The algorithm in the token header must belong to a configured key family: `alg: none` is never
  accepted, an HS256 token is checked only against the secret and an RS/ES token only against the
  JWKS keys, so a token HMAC-signed with a public key ("algorithm confusion") fails.
- `exp` and `sub` are required; `aud` must be the configured audience; `iss` is checked when configured.

The app role (admin / editor / viewer) comes from a configurable claim path, by default
`app_metadata.role` (Supabase: set by an admin with the service key) then `user_role` (a Supabase
custom access token hook). A token without one gets the role stored in `users` (see users.py).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt

from .errors import AuthenticationFailed, ConfigurationError, IntegrationFailed
from .settings import Settings

ROLES = ("viewer", "editor", "admin")  # each role can do what the ones before it can
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                                   "ES256", "ES384", "ES512", "EdDSA"})
SYMMETRIC_ALGORITHMS = frozenset({"HS256"})
LEEWAY_SECONDS = 30  # clock skew tolerated on exp/nbf/iat
DEV_SECRET_FILE = "dev-jwt-secret"


def role_at_least(role: str | None, required: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(required)


@dataclass(frozen=True)
class Principal:
    """Who is calling, from a verified token."""

    subject: str
    user_id: uuid.UUID
    email: str
    claimed_role: str | None  # None: the token carries no app role, the stored one applies
    claims: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


def user_id_for(subject: str, issuer: str | None = None) -> uuid.UUID:
    """Supabase subjects are the auth user's UUID; other issuers' subjects map to a stable UUID."""
    try:
        return uuid.UUID(subject)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{issuer or ''}#{subject}")


def claim_at(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def role_from_claims(claims: dict[str, Any], role_claim: str) -> str | None:
    for path in (p.strip() for p in role_claim.split(",")):
        value = claim_at(claims, path) if path else None
        if isinstance(value, str) and value in ROLES:
            return value
    return None


class TokenVerifier:
    """Verifies bearer tokens. Thread-safe; one per process (it holds the JWKS cache)."""

    def __init__(self, *, secret: str | None = None, jwks_url: str | None = None,
                 audience: str = "authenticated", issuer: str | None = None,
                 role_claim: str = "app_metadata.role,user_role", jwks_cache_seconds: float = 600,
                 jwks_refresh_cooldown: float = 30, jwks_timeout: float = 10):
        if not secret and not jwks_url:
            raise ConfigurationError("no way to verify tokens: set PROPOSALFLOW_JWT_SECRET or PROPOSALFLOW_JWKS_URL")
        self.secret = secret
        self.audience = audience
        self.issuer = issuer
        self.role_claim = role_claim
        self.jwks_url = jwks_url
        self._jwks = (jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=max(1.0, jwks_cache_seconds),
                                      timeout=jwks_timeout, cooldown_duration=jwks_refresh_cooldown)
                      if jwks_url else None)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        return cls(secret=signing_secret(settings), jwks_url=settings.jwks_url,
                   audience=settings.jwt_audience, issuer=settings.jwt_issuer,
                   role_claim=settings.jwt_role_claim, jwks_cache_seconds=settings.jwks_cache_seconds)

    def may_fetch_keys(self, token: str) -> bool:
        """Whether verifying `token` may need the network (an asymmetric token and a JWKS to consult)."""
        if self._jwks is None:
            return False
        try:
            return jwt.get_unverified_header(token).get("alg") in ASYMMETRIC_ALGORITHMS
        except jwt.InvalidTokenError:
            return False

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"malformed bearer token: {exc}") from exc
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise AuthenticationFailed("unsigned tokens (alg: none) are not accepted")
        if algorithm in SYMMETRIC_ALGORITHMS:
            if not self.secret:
                raise AuthenticationFailed(f"{algorithm} tokens are not accepted here (no shared secret is configured)")
            key: Any = self.secret
        elif algorithm in ASYMMETRIC_ALGORITHMS:
            if self._jwks is None:
                raise AuthenticationFailed(f"{algorithm} tokens are not accepted here (no JWKS URL is configured)")
            key = self._signing_key(header, algorithm)
        else:
            raise AuthenticationFailed(f"token algorithm {algorithm!r} is not accepted")
        try:
            claims = jwt.decode(
                token, key, algorithms=[algorithm], audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_iss": self.issuer is not None},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailed("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationFailed(f"the token's audience is not {self.audience!r}") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationFailed(f"the token's issuer is not {self.issuer!r}") from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationFailed("the token's signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise AuthenticationFailed(f"the token has no {exc.claim!r} claim") from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"invalid bearer token: {exc}") from exc
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject:
            raise AuthenticationFailed("the token's 'sub' claim is empty")
        email = claims.get("email")
        if not isinstance(email, str) or "@" not in email:
            email = f"{subject}@users.invalid"  # phone or anonymous sign-ins carry no email
        return Principal(subject=subject, user_id=user_id_for(subject, claims.get("iss")), email=email.lower(),
                         claimed_role=role_from_claims(claims, self.role_claim), claims=claims)

    def _signing_key(self, header: dict, algorithm: str) -> Any:
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthenticationFailed("the token names no signing key ('kid' header)")
        try:
            jwk = self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            raise IntegrationFailed(f"the JWKS at {self.jwks_url} could not be fetched: {exc}") from exc
        except jwt.PyJWKClientError as exc:
            raise AuthenticationFailed(f"the token's signing key {kid!r} is not in the JWKS") from exc
        except jwt.PyJWKSetError as exc:
            raise IntegrationFailed(f"the JWKS at {self.jwks_url} holds no usable keys: {exc}") from exc
        if jwk.algorithm_name and jwk.algorithm_name != algorithm:
            raise AuthenticationFailed(f"the token's algorithm {algorithm} does not match its key ({jwk.algorithm_name})")
        return jwk.key


def mint_token(secret: str, *, email: str, role: str, ttl_seconds: int = 3600, subject: str | None = None,
               audience: str = "authenticated", issuer: str | None = None,
               role_claim: str = "app_metadata.role,user_role") -> str:
    """An HS256 token shaped like Supabase's, for development and tests."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject or str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{email.lower()}")),
        "email": email.lower(), "aud": audience, "role": "authenticated",
        "iat": now, "exp": now + ttl_seconds,
    }
    if issuer:
        claims["iss"] = issuer
    path = role_claim.split(",")[0].strip() or "app_metadata.role"
    target = claims
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = role
    return jwt.encode(claims, secret, algorithm="HS256")


def signing_secret(settings: Settings) -> str | None:
    """The HS256 secret: PROPOSALFLOW_JWT_SECRET, or — for local use only, when neither it nor a
    JWKS URL is set — a random one kept in PROPOSALFLOW_HOME, so `proposalflow token` and
    `proposalflow api` on one machine agree without any set-up."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    if settings.jwks_url or settings.environment != "local":
        return None
    path = settings.home_dir / DEV_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    return _write_secret(path)


def _write_secret(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        with open(path, "x", encoding="utf-8") as fh:  # exclusive: two processes racing agree on one
            path.chmod(0o600)
            fh.write(value)
    except FileExistsError:
        return path.read_text().strip()
    return value


def parse_duration(text: str) -> int:
    """'90s', '15m', '1h', '7d' or plain seconds → seconds."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            value = int(float(text[:-1]) * units[text[-1]])
        else:
            value = int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a duration like 90s, 15m, 1h or 7d") from None
    if value <= 0:
        raise ValueError("the duration must be positive")
    return value
