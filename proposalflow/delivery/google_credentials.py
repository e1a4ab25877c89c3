"""Google credentials for delivery: a service account, or a user's OAuth2 consent kept encrypted.

- **Service account** (GOOGLE_APPLICATION_CREDENTIALS = its JSON key file). With domain-wide
  delegation, PROPOSALFLOW_GOOGLE_SUBJECT names the Workspace user it acts as — needed for Gmail,
  since a service account has no mailbox of its own.
- **Installed-app OAuth2** (`proposalflow google auth`): the consent flow runs once in a browser;
  the resulting authorized-user JSON (refresh token, client id and secret) is stored in
  `google_credentials` as a Fernet token under PROPOSALFLOW_FERNET_KEY — never in clear.
  Several comma-separated keys rotate: the first encrypts, all decrypt.

Scopes are the narrowest that work: `drive.file` (only files this app creates: the client folders
and the documents — the Doc is an HTML upload converted by Drive, so no `documents` scope is
needed) and `gmail.compose` (drafts, and sending them).
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import psycopg

from ..errors import ConfigurationError, GoogleAuthorizationFailed

DRIVE_FILE = "https://www.googleapis.com/auth/drive.file"
GMAIL_COMPOSE = "https://www.googleapis.com/auth/gmail.compose"
SCOPES = (DRIVE_FILE, GMAIL_COMPOSE)

KEY_HINT = ('make one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"')


# ── encryption ───────────────────────────────────────────────────────────────────────────────

def fernet(key_setting: str | None):
    """A MultiFernet over the comma-separated keys (first one encrypts)."""
    from cryptography.fernet import Fernet, MultiFernet

    if not key_setting or not key_setting.strip():
        raise ConfigurationError("PROPOSALFLOW_FERNET_KEY is not set: it encrypts the stored Google OAuth tokens; "
                                 + KEY_HINT)
    keys = []
    for number, key in enumerate((k.strip() for k in key_setting.split(",") if k.strip()), start=1):
        try:
            keys.append(Fernet(key))
        except (ValueError, TypeError):
            raise ConfigurationError(f"PROPOSALFLOW_FERNET_KEY: key {number} is not a Fernet key (32 url-safe "
                                     f"base64-encoded bytes); {KEY_HINT}") from None
    return MultiFernet(keys)


# ── stored OAuth user credentials ──────────────────────────────────────────────────────────────

def store_user_credentials(conn: psycopg.Connection, credentials, key_setting: str | None, *,
                           name: str = "default", account_email: str | None = None) -> dict:
    """Encrypt and keep the authorized-user info of `credentials` (google.oauth2.credentials.Credentials)."""
    if not getattr(credentials, "refresh_token", None):
        raise GoogleAuthorizationFailed("Google returned no refresh token: revoke the app's access at "
                                        "https://myaccount.google.com/permissions and run `proposalflow google auth` again")
    box = fernet(key_setting)
    info = json.loads(credentials.to_json(strip=["token", "expiry"]))
    scopes = sorted(info.get("scopes") or credentials.scopes or SCOPES)
    encrypted = box.encrypt(json.dumps(info).encode())
    with conn.transaction():
        conn.execute(
            """INSERT INTO google_credentials (name, account_email, scopes, encrypted) VALUES (%s, %s, %s, %s)
               ON CONFLICT (name) DO UPDATE SET account_email = EXCLUDED.account_email, scopes = EXCLUDED.scopes,
                                               encrypted = EXCLUDED.encrypted""",
            (name, account_email, scopes, encrypted))
    return {"name": name, "account_email": account_email, "scopes": scopes}


def has_user_credentials(conn: psycopg.Connection, name: str = "default") -> bool:
    return conn.execute("SELECT 1 FROM google_credentials WHERE name = %s", (name,)).fetchone() is not None


def stored_credentials_info(conn: psycopg.Connection, name: str = "default") -> dict | None:
    row = conn.execute("SELECT name, account_email, scopes, created_at, updated_at FROM google_credentials "
                       "WHERE name = %s", (name,)).fetchone()
    if row is None:
        return None
    return dict(zip(("name", "account_email", "scopes", "created_at", "updated_at"), row))


def load_user_credentials(conn: psycopg.Connection, key_setting: str | None, name: str = "default"):
    """The stored OAuth user credentials (refreshed on first use), or None when there are none."""
    from cryptography.fernet import InvalidToken
    from google.oauth2.credentials import Credentials

    row = conn.execute("SELECT encrypted, scopes FROM google_credentials WHERE name = %s", (name,)).fetchone()
    if row is None:
        return None
    box = fernet(key_setting)
    try:
        info = json.loads(box.decrypt(bytes(row[0])))
    except InvalidToken:
        raise ConfigurationError(f"the stored Google credentials '{name}' do not decrypt with PROPOSALFLOW_FERNET_KEY "
                                 "(another key encrypted them: add it after the new one, comma-separated, or run "
                                 "`proposalflow google auth` again)") from None
    _require_scopes(info.get("scopes") or row[1], f"the stored Google credentials '{name}'")
    return Credentials.from_authorized_user_info(info, scopes=info.get("scopes") or list(row[1]))


def _require_scopes(granted, what: str) -> None:
    missing = [s for s in SCOPES if s not in set(granted or [])]
    if missing:
        raise GoogleAuthorizationFailed(f"{what} lack the scopes {', '.join(missing)}: run `proposalflow google auth` "
                                        "again and grant them")


# ── service account ─────────────────────────────────────────────────────────────────────────

def service_account_credentials(path: Path, subject: str | None = None):
    from google.oauth2 import service_account

    try:
        info = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"GOOGLE_APPLICATION_CREDENTIALS {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"GOOGLE_APPLICATION_CREDENTIALS {path}: not JSON ({exc})") from exc
    if info.get("type") != "service_account":
        raise ConfigurationError(f"GOOGLE_APPLICATION_CREDENTIALS {path}: a '{info.get('type')}' file, not a service "
                                 "account key; for a user's OAuth consent use `proposalflow google auth`")
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=list(SCOPES))
    except (ValueError, KeyError) as exc:
        raise ConfigurationError(f"GOOGLE_APPLICATION_CREDENTIALS {path}: not a usable service-account key ({exc})") from exc
    return credentials.with_subject(subject) if subject else credentials


# ── choosing ───────────────────────────────────────────────────────────────────────────────────

def workspace_credentials(conn: psycopg.Connection, settings) -> tuple[object, str]:
    """The credentials delivery uses, and a description of them. Service account first, then stored OAuth.

    Gmail needs a mailbox: a service account must act for a user (domain-wide delegation)."""
    if settings.google_application_credentials:
        if not settings.google_subject:
            raise GoogleAuthorizationFailed(
                "a service account has no Gmail mailbox of its own: set PROPOSALFLOW_GOOGLE_SUBJECT to the Workspace "
                "user it acts for (domain-wide delegation of the scopes " + ", ".join(SCOPES) + "), or use a user's "
                "consent instead (`proposalflow google auth`, with GOOGLE_APPLICATION_CREDENTIALS unset)")
        credentials = service_account_credentials(settings.google_application_credentials, settings.google_subject)
        return credentials, f"service account {credentials.service_account_email} as {settings.google_subject}"
    key = settings.fernet_key.get_secret_value() if settings.fernet_key else None
    credentials = load_user_credentials(conn, key)
    if credentials is None:
        raise ConfigurationError("no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS (a service-account key) "
                                 "or run `proposalflow google auth`; or deliver with the local exporters "
                                 "(PROPOSALFLOW_DELIVERY=local)")
    info = stored_credentials_info(conn) or {}
    return credentials, f"OAuth consent of {info.get('account_email') or 'the authorised user'}"


def authorized_http(credentials, *, timeout: float, http=None):
    """An httplib2 client that adds (and refreshes) the credentials' token; `http` is the transport
    underneath (a real httplib2.Http with a timeout, or a test's HttpMockSequence)."""
    import google_auth_httplib2
    import httplib2

    return google_auth_httplib2.AuthorizedHttp(credentials, http=http or httplib2.Http(timeout=timeout))


# ── the consent flow (`proposalflow google auth`) ────────────────────────────────────────────────

def run_consent_flow(client_secrets: Path, *, open_browser: bool = True, host: str = "localhost", port: int = 0,
                     timeout_seconds: int | None = 300):
    """The installed-app flow: a browser consent, a one-shot local redirect server, the code exchanged
    for tokens. Asks for offline access so there is a refresh token. Prompts go to stderr."""
    from google_auth_oauthlib.flow import InstalledAppFlow

    path = Path(client_secrets).expanduser()
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"OAuth client file {path}: {exc.strerror or exc} (download it from Google Cloud "
                                 "console → APIs & Services → Credentials → OAuth client ID → Desktop app)") from exc
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"OAuth client file {path}: not JSON ({exc})") from exc
    if "installed" not in config:
        raise ConfigurationError(f"OAuth client file {path}: not a 'Desktop app' client (no 'installed' section)")
    flow = InstalledAppFlow.from_client_config(config, scopes=list(SCOPES))
    with contextlib.redirect_stdout(sys.stderr):  # the library prints the URL; stdout stays for --json
        try:
            credentials = flow.run_local_server(
                host=host, port=port, open_browser=open_browser, timeout_seconds=timeout_seconds,
                authorization_prompt_message="Open this URL in a browser to let proposalflow use Google Drive "
                                             "and Gmail drafts:\n{url}",
                success_message="proposalflow is authorised. You can close this window.",
                access_type="offline", prompt="consent")
        except Exception as exc:  # noqa: BLE001 - oauthlib/requests errors: say what happened, once
            raise GoogleAuthorizationFailed(f"Google consent did not complete: {type(exc).__name__}: {exc}") from exc
    _require_scopes(credentials.scopes or [], "the granted consent")
    return credentials
