"""The `users` table mirrors the identity provider: a row per token subject, upserted on first sight.

A user's effective role is the role their token claims (which is then stored), or — for tokens
without a role claim — the role stored here, which an admin sets (`set_role`). New users without a
claim start as viewers.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

from .errors import Conflict, NotFound, ValidationFailed
from .pagination import Page, SortKey, keyset
from .security import ROLES, Principal


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str
    role: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_seen_at: datetime | None = None

    def as_dict(self) -> dict:
        return asdict(self)


_COLUMNS = "id, email, role, created_at, updated_at, last_seen_at"


def upsert_user(conn: psycopg.Connection, principal: Principal) -> User:
    """Insert or refresh the caller's row; returns it with the effective role."""
    try:
        row = conn.execute(
            f"""INSERT INTO users (id, email, role, last_seen_at) VALUES (%(id)s, %(email)s, coalesce(%(role)s, 'viewer'), now())
                ON CONFLICT (id) DO UPDATE
                   SET email = EXCLUDED.email, role = coalesce(%(role)s, users.role), last_seen_at = now()
                RETURNING {_COLUMNS}""",
            {"id": principal.user_id, "email": principal.email, "role": principal.claimed_role},
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise Conflict(f"the email {principal.email} belongs to another user than token subject "
                       f"{principal.subject}; an admin must resolve the duplicate in the users table") from exc
    return User(*row)


def get_user(conn: psycopg.Connection, user_id: str | uuid.UUID) -> User:
    row = conn.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", (_uuid(user_id),)).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return User(*row)


def set_role(conn: psycopg.Connection, user_id: str | uuid.UUID, role: str) -> User:
    if role not in ROLES:
        raise ValidationFailed(f"role must be one of {', '.join(ROLES)}", [{"field": "role", "message": "unknown role"}])
    row = conn.execute(f"UPDATE users SET role = %s WHERE id = %s RETURNING {_COLUMNS}",
                       (role, _uuid(user_id))).fetchone()
    if row is None:
        raise NotFound(f"user {user_id} does not exist")
    return User(*row)


def _uuid(value: str | uuid.UUID) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"user {value!r} does not exist (not a user id)") from None


class SeenUsers:
    """A short-lived cache of upserted users, so a busy caller costs one upsert per `ttl` seconds,
    not one per request. A role change by an admin reaches cached callers within `ttl`."""

    def __init__(self, ttl: float = 30.0, max_entries: int = 10_000):
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[tuple, tuple[float, User]] = {}
        self._lock = threading.Lock()

    def get(self, principal: Principal) -> User | None:
        key = (principal.user_id, principal.email, principal.claimed_role)
        with self._lock:
            entry = self._entries.get(key)
            if entry and entry[0] > time.monotonic():
                return entry[1]
        return None

    def put(self, principal: Principal, user: User) -> None:
        key = (principal.user_id, principal.email, principal.claimed_role)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                now = time.monotonic()
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[key] = (time.monotonic() + self.ttl, user)


USER_SORT_KEYS = {"email": SortKey("email", "text"), "created_at": SortKey("created_at", "timestamp")}


def list_users(conn: psycopg.Connection, *, limit: int, cursor: str | None = None, sort: str = "email",
               role: str | None = None) -> Page[User]:
    page = keyset(sort, USER_SORT_KEYS, limit=limit, cursor=cursor)
    clauses, params = [], []
    if role:
        clauses.append("role = %s")
        params.append(role)
    if page.where:
        clauses.append(page.where)
        params += page.params
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM users {where} {page.order_limit}", params).fetchall()
    return page.page([User(*r) for r in rows], lambda u: getattr(u, page.key.column), lambda u: u.id)
