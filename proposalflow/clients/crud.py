"""One client at a time: create, read, list (keyset pages), replace, delete.

Input goes through the same normalisation and the same rules as ingestion
(`normalise.normalise_row`, and `validation`'s EMAIL_PATTERN / WEBSITE_PATTERN), so a client
typed into the API and the same client in a CSV get the same natural key and the same verdict.
Server-owned fields (id, natural key, domain, enrichment, timestamps) are never taken from input.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

from ..inputs import Input
from ..errors import Conflict, NotFound, ValidationFailed
from ..pagination import Keyset, Page, SortKey, keyset
from .normalise import normalise_row
from .validation import EMAIL_PATTERN, WEBSITE_PATTERN

_EMAIL = re.compile(EMAIL_PATTERN)
_WEBSITE = re.compile(WEBSITE_PATTERN)
# the canonical fields, as ingestion's header mapping names them
_FIELDS = ("name", "website", "email", "phone", "contact_name", "external_id")

SORT_KEYS = {
    "name": SortKey("c.name", "text"),
    "created_at": SortKey("c.created_at", "timestamp"),
    "updated_at": SortKey("c.updated_at", "timestamp"),
}
EnrichmentFilter = Literal["enriched", "not_enriched"]


class ClientInput(Input):
    """What a person may set on a client (create and full replace)."""

    name: str = Field(min_length=1, max_length=500, description="Company name")
    website: str | None = Field(None, max_length=2048, description="http(s) URL or bare domain; normalised")
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=100)
    contact_name: str | None = Field(None, max_length=300)
    external_id: str | None = Field(None, max_length=200, description="The client's id in your CRM")
    contact_info: dict[str, Any] = Field(default_factory=dict, max_length=100,
                                         description="Further contact fields, kept as given")


class Client(BaseModel):
    id: uuid.UUID
    name: str
    website: str | None
    domain: str | None
    email: str | None
    phone: str | None
    contact_name: str | None
    external_id: str | None
    contact_info: dict[str, Any]
    enriched_data: dict[str, Any] | None
    natural_key: str
    source: str | None
    created_at: datetime
    updated_at: datetime


_SELECT = """SELECT c.id, c.name, c.website, c.domain, c.contact_info ->> 'email', c.contact_info ->> 'phone',
                    c.contact_info ->> 'contact_name', c.external_id, c.contact_info, c.enriched_data,
                    c.natural_key, c.source, c.created_at, c.updated_at
               FROM clients c"""


def _from_row(row: tuple) -> Client:
    return Client(id=row[0], name=row[1], website=row[2], domain=row[3], email=row[4], phone=row[5],
                  contact_name=row[6], external_id=row[7], contact_info=row[8] or {}, enriched_data=row[9],
                  natural_key=row[10], source=row[11], created_at=row[12], updated_at=row[13])


def prepare(data: ClientInput) -> dict[str, Any]:
    """Normalise and validate like ingestion; raise ValidationFailed listing every field at fault."""
    values = {f: getattr(data, f) for f in _FIELDS}
    record = normalise_row(0, values, {f: f for f in _FIELDS})
    errors = []
    if not record.name:
        errors.append({"field": "name", "message": "name is missing"})
    if record.email and not _EMAIL.search(record.email):
        errors.append({"field": "email", "message": f"email {record.email!r} is not a valid address"})
    if record.website and not _WEBSITE.search(record.website):
        errors.append({"field": "website", "message": f"website {record.website_input!r} is not a valid "
                                                      "http(s) URL with a domain name"})
    if errors:
        raise ValidationFailed("; ".join(e["message"] for e in errors), errors)
    extras = {str(k).strip(): v for k, v in data.contact_info.items()
              if str(k).strip() and str(k).strip() not in _FIELDS and v not in (None, "")}
    return {
        "name": record.name, "website": record.website, "domain": record.domain,
        "external_id": record.external_id, "natural_key": record.natural_key,
        "contact_info": {**extras, **record.contact_info},
    }


def create_client(conn: psycopg.Connection, data: ClientInput, *, source: str = "api") -> Client:
    fields = prepare(data)
    row = conn.execute(
        f"""WITH inserted AS (
                INSERT INTO clients (name, website, domain, external_id, natural_key, contact_info, source)
                VALUES (%(name)s, %(website)s, %(domain)s, %(external_id)s, %(natural_key)s, %(contact_info)s, %(source)s)
                ON CONFLICT (natural_key) DO NOTHING RETURNING *)
            {_SELECT.replace('FROM clients c', 'FROM inserted c')}""",
        {**fields, "contact_info": Jsonb(fields["contact_info"]), "source": source},
    ).fetchone()
    if row is None:
        raise _duplicate(conn, fields["natural_key"])
    return _from_row(row)


def get_client(conn: psycopg.Connection, client_id: str | uuid.UUID) -> Client:
    row = conn.execute(f"{_SELECT} WHERE c.id = %s", (_uuid(client_id),)).fetchone()
    if row is None:
        raise NotFound(f"client {client_id} does not exist")
    return _from_row(row)


def missing_clients(conn: psycopg.Connection, client_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The ids of `client_ids` that name no client, in the order given."""
    found = {r[0] for r in conn.execute("SELECT id FROM clients WHERE id = ANY(%s)", (list(client_ids),))}
    return [c for c in client_ids if c not in found]


def list_clients(conn: psycopg.Connection, *, limit: int, cursor: str | None = None, sort: str = "name",
                 name: str | None = None, domain: str | None = None,
                 enrichment: EnrichmentFilter | None = None) -> Page[Client]:
    """`name`: case-insensitive substring; `domain`: exact (normalised like a website)."""
    page = keyset(sort, SORT_KEYS, limit=limit, cursor=cursor)
    where, params = _filters(page, name, domain, enrichment)
    rows = conn.execute(f"{_SELECT} {where} {page.order_limit}", params).fetchall()
    return page.page([_from_row(r) for r in rows], lambda c: getattr(c, page.key.column[2:]), lambda c: c.id)


def _filters(page: Keyset, name: str | None, domain: str | None, enrichment: str | None) -> tuple[str, list]:
    clauses, params = [], []
    if name:
        clauses.append("c.name ILIKE %s")
        params.append("%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if domain:
        clauses.append("c.domain = %s")
        params.append(_domain(domain))
    if enrichment == "enriched":
        clauses.append("c.enriched_data IS NOT NULL")
    elif enrichment == "not_enriched":
        clauses.append("c.enriched_data IS NULL")
    if page.where:
        clauses.append(page.where)
        params += page.params
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _domain(text: str) -> str:
    from .normalise import normalise_website

    return normalise_website(text)[1] or text.strip().lower()


def replace_client(conn: psycopg.Connection, client_id: str | uuid.UUID, data: ClientInput) -> Client:
    fields = prepare(data)
    try:
        with conn.transaction():
            row = conn.execute(
                f"""WITH updated AS (
                        UPDATE clients SET name = %(name)s, website = %(website)s, domain = %(domain)s,
                               external_id = %(external_id)s, natural_key = %(natural_key)s,
                               contact_info = %(contact_info)s
                         WHERE id = %(id)s RETURNING *)
                    {_SELECT.replace('FROM clients c', 'FROM updated c')}""",
                {**fields, "contact_info": Jsonb(fields["contact_info"]), "id": _uuid(client_id)},
            ).fetchone()
    except psycopg.errors.UniqueViolation:
        raise _duplicate(conn, fields["natural_key"]) from None
    if row is None:
        raise NotFound(f"client {client_id} does not exist")
    return _from_row(row)


def delete_client(conn: psycopg.Connection, client_id: str | uuid.UUID, *, cascade: bool = False) -> dict:
    """Refuse (Conflict) when the client has proposals, unless `cascade` (then they go too)."""
    cid = _uuid(client_id)
    with conn.transaction():
        if conn.execute("SELECT 1 FROM clients WHERE id = %s FOR UPDATE", (cid,)).fetchone() is None:
            raise NotFound(f"client {client_id} does not exist")
        proposals = conn.execute("SELECT count(*) FROM proposals WHERE client_id = %s", (cid,)).fetchone()[0]
        if proposals and not cascade:
            raise Conflict(f"client {client_id} has {proposals} proposal(s); delete them first, or delete "
                           "with cascade (admins only)")
        if proposals:
            conn.execute("DELETE FROM proposals WHERE client_id = %s", (cid,))
        try:
            with conn.transaction():
                conn.execute("DELETE FROM clients WHERE id = %s", (cid,))
        except psycopg.errors.ForeignKeyViolation as exc:
            table = exc.diag.table_name or "another table"
            raise Conflict(f"client {client_id} is still referenced from {table}") from None
    return {"id": str(cid), "proposals_deleted": proposals if cascade else 0}


def _duplicate(conn: psycopg.Connection, natural_key: str) -> Conflict:
    row = conn.execute("SELECT id FROM clients WHERE natural_key = %s", (natural_key,)).fetchone()
    kind, value = natural_key.split(":", 1)
    label = {"domain": "website domain", "ext": "external id", "name": "name"}[kind]
    other = f" (client {row[0]})" if row else ""
    return Conflict(f"a client with the same {label} {value!r} already exists{other}")


def _uuid(value: str | uuid.UUID) -> uuid.UUID:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"client {value!r} does not exist (not a client id)") from None
