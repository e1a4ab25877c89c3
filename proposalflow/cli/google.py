"""`proposalflow google auth|status`: the OAuth consent for Google delivery, and which credentials
delivery would use. Neither runs a flow, so neither imports Prefect."""

from __future__ import annotations

from pathlib import Path

import typer

from .output import JsonOption, emit_json, err, out, reported_errors

app = typer.Typer(help="Google Workspace delivery: consent and credentials.", no_args_is_help=True)


@app.command("auth")
def auth(
    client_secrets: Path = typer.Option(None, "--client-secrets", help="The OAuth client file (Desktop app) from "
                                        "Google Cloud console (default: PROPOSALFLOW_GOOGLE_CLIENT_SECRETS)."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Local port for Google's redirect (0: any free)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the consent URL instead of opening a browser."),
    timeout: int = typer.Option(300, "--timeout", min=10, help="Seconds to wait for the consent."),
    as_json: bool = JsonOption,
) -> None:
    """Run Google's consent flow once; the refresh token is stored encrypted (PROPOSALFLOW_FERNET_KEY)."""
    with reported_errors(as_json):
        from ..database import connect
        from ..delivery.google_credentials import fernet, run_consent_flow, store_user_credentials
        from ..errors import ConfigurationError
        from ..settings import get_settings

        settings = get_settings()
        key = settings.fernet_key.get_secret_value() if settings.fernet_key else None
        fernet(key)  # refuse before the browser opens, not after
        secrets = client_secrets or settings.google_client_secrets
        if secrets is None:
            raise ConfigurationError("no OAuth client: pass --client-secrets FILE or set "
                                     "PROPOSALFLOW_GOOGLE_CLIENT_SECRETS (Google Cloud console → APIs & Services → "
                                     "Credentials → Create OAuth client ID → Desktop app → download JSON)")
        if settings.google_application_credentials:
            err.print("note: GOOGLE_APPLICATION_CREDENTIALS is set, and a service account takes precedence over "
                      "this consent; unset it to deliver as the consenting user", highlight=False)
        credentials = run_consent_flow(secrets, open_browser=not no_browser, port=port, timeout_seconds=timeout)
        with connect(autocommit=True) as conn:
            stored = store_user_credentials(conn, credentials, key)
    if as_json:
        emit_json({**stored, "stored": True})
        return
    out.print("[bold]Google consent stored[/] (encrypted): " + ", ".join(stored["scopes"]), highlight=False)


@app.command("status")
def status(as_json: bool = JsonOption) -> None:
    """Which target delivery would use, and with which Google credentials (no network call)."""
    with reported_errors(as_json):
        from ..database import connect
        from ..delivery.google_credentials import SCOPES, stored_credentials_info
        from ..delivery.service import target_name
        from ..settings import get_settings

        settings = get_settings()
        with connect(autocommit=True) as conn:
            target = target_name(conn, settings)
            stored = stored_credentials_info(conn)
        report = {
            "target": target,
            "service_account": str(settings.google_application_credentials)
            if settings.google_application_credentials else None,
            "subject": settings.google_subject,
            "stored_consent": {"scopes": stored["scopes"], "account_email": stored["account_email"],
                               "updated_at": stored["updated_at"].isoformat()} if stored else None,
            "fernet_key_set": settings.fernet_key is not None,
            "scopes_needed": list(SCOPES),
            "allow_send": settings.allow_send,
            "smtp": settings.smtp_url is not None,
        }
    if as_json:
        emit_json(report)
        return
    for key, value in report.items():
        shown = "—" if value is None else ", ".join(value) if isinstance(value, list) else \
            ", ".join(f"{k} {', '.join(v) if isinstance(v, list) else v}" for k, v in value.items()) \
            if isinstance(value, dict) else str(value)
        out.print(f"[bold]{key:<16}[/] {shown}", highlight=False, soft_wrap=True)
