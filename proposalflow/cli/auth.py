"""`proposalflow token`: mint a development token the API accepts (no Prefect, no database)."""

from __future__ import annotations

import typer

from .output import JsonOption, emit_json, err, reported_errors


def token(
    email: str = typer.Option(..., "--email", help="Whose token: the users row is keyed by it."),
    role: str = typer.Option("viewer", "--role", help="viewer, editor or admin."),
    ttl: str = typer.Option("1h", "--ttl", help="Lifetime: 90s, 15m, 1h, 7d …"),
    as_json: bool = JsonOption,
) -> None:
    """Mint an HS256 token signed with PROPOSALFLOW_JWT_SECRET (or the local development secret),
    shaped like a Supabase access token: curl -H "Authorization: Bearer $(proposalflow token --email me@x.io --role editor)" …"""
    from datetime import datetime, timezone

    from ..errors import ConfigurationError, ValidationFailed
    from ..security import ROLES, DEV_SECRET_FILE, mint_token, parse_duration, signing_secret
    from ..settings import get_settings

    with reported_errors(as_json):
        if role not in ROLES:
            raise ValidationFailed(f"--role must be one of {', '.join(ROLES)}", [{"field": "role", "message": "unknown role"}])
        if "@" not in email:
            raise ValidationFailed(f"--email {email!r} is not an email address", [{"field": "email", "message": "invalid"}])
        try:
            seconds = parse_duration(ttl)
        except ValueError as exc:
            raise ValidationFailed(f"--ttl: {exc}", [{"field": "ttl", "message": str(exc)}]) from None
        settings = get_settings()
        secret = signing_secret(settings)
        if secret is None:
            raise ConfigurationError(
                "no PROPOSALFLOW_JWT_SECRET to sign with: this API verifies tokens from "
                f"{settings.jwks_url or 'nowhere'}; get a token from Supabase Auth, or set the secret")
        if settings.jwt_secret is None:
            err.print(f"signed with the local development secret ({settings.home_dir / DEV_SECRET_FILE}); "
                      "set PROPOSALFLOW_JWT_SECRET to use your Supabase project's", highlight=False)
        value = mint_token(secret, email=email, role=role, ttl_seconds=seconds, audience=settings.jwt_audience,
                           issuer=settings.jwt_issuer, role_claim=settings.jwt_role_claim)
    if as_json:
        import jwt

        claims = jwt.decode(value, options={"verify_signature": False})
        emit_json({"token": value, "email": claims["email"], "role": role, "subject": claims["sub"],
                   "expires_at": datetime.fromtimestamp(claims["exp"], timezone.utc).isoformat()})
    else:
        typer.echo(value)
