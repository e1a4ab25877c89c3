"""Header aliases, value normalisation and the natural key of a client.

Headers match case-, space-, underscore- and hyphen-insensitively ("Company Name", "company_name",
"E-mail"). Columns that match no alias are kept, under their original header, in contact_info.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ALIASES: dict[str, set[str]] = {
    "name": {"name", "company", "company name", "client", "client name", "organisation", "organization",
             "organisation name", "organization name", "business", "business name", "account", "account name"},
    "website": {"website", "url", "site", "web", "web site", "homepage", "home page", "website url", "domain"},
    "email": {"email", "e-mail", "mail", "email address", "e-mail address", "contact email"},
    "phone": {"phone", "telephone", "tel", "phone number", "mobile", "contact phone"},
    "contact_name": {"contact", "contact name", "contact person", "person", "primary contact"},
    "external_id": {"external id", "id", "client id", "customer id", "crm id", "account id"},
}


def _header_key(header: str) -> str:
    return re.sub(r"[\s_\-]+", "", header.strip().lower())


_ALIAS_INDEX = {_header_key(alias): canonical for canonical, aliases in ALIASES.items() for alias in aliases}
_SPACES = re.compile(r"\s+")
_NAME_KEY_DROP = re.compile(r"[^\w&]+")


def canonical_field(header: str) -> str | None:
    return _ALIAS_INDEX.get(_header_key(header))


@dataclass
class ClientRecord:
    row_number: int
    raw: dict[str, Any]
    name: str | None = None
    website: str | None = None
    website_input: str | None = None  # as given, for error messages
    domain: str | None = None
    email: str | None = None
    external_id: str | None = None
    contact_info: dict[str, Any] = field(default_factory=dict)

    @property
    def natural_key(self) -> str | None:
        return natural_key(self.name, self.domain, self.external_id)


def natural_key(name: str | None, domain: str | None, external_id: str | None) -> str | None:
    """domain, else external id, else normalised name — see sql/0003_client_ingestion.sql."""
    if domain:
        return f"domain:{domain}"
    if external_id:
        return f"ext:{external_id}"
    if name:
        return "name:" + _SPACES.sub(" ", _NAME_KEY_DROP.sub(" ", name.lower())).strip()
    return None


def normalise_row(row_number: int, values: dict[str, Any], mapping: dict[str, str | None]) -> ClientRecord:
    """One raw row → a ClientRecord. The first column that maps to a field wins; later ones and
    unknown columns are kept under their own header in contact_info. (A hot path: keep it lean.)"""
    record = ClientRecord(row_number=row_number, raw=values)
    contact: dict[str, Any] = {}
    assigned: set[str] = set()
    for header, value in values.items():
        text = value.strip() if isinstance(value, str) else clean_text(value)
        if not text:
            continue
        canonical = mapping[header] if header in mapping else canonical_field(str(header))
        if canonical is None or canonical in assigned:
            contact[str(header).strip()] = text
            continue
        assigned.add(canonical)
        if canonical == "name":
            record.name = _SPACES.sub(" ", text if text.isascii() else unicodedata.normalize("NFKC", text))
        elif canonical == "email":
            record.email = normalise_email(text)
        elif canonical == "website":
            record.website_input = text
            record.website, record.domain = normalise_website(text)
        elif canonical == "external_id":
            record.external_id = text
        else:  # phone, contact_name
            contact[canonical] = text
    if record.email:
        contact["email"] = record.email
    record.contact_info = contact
    return record


def clean_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        return None if not value else value  # nested JSON kept as is in contact_info
    text = str(value).strip()
    return text or None


def normalise_email(text: str) -> str:
    text = text.strip().lower()
    return text[len("mailto:"):] if text.startswith("mailto:") else text


_SIMPLE_WEBSITE = re.compile(r"^(?:(https?)://)?(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)\.?/?$", re.IGNORECASE)


def normalise_website(text: str) -> tuple[str, str | None]:
    """'WWW.Acme.com/' → ('https://acme.com', 'acme.com'). Returns (url, domain or None if no host)."""
    text = text.strip()
    simple = _SIMPLE_WEBSITE.match(text)  # the common case, without urllib's general parser
    if simple:
        host = simple.group(2).lower()
        return f"{(simple.group(1) or 'https').lower()}://{host}", host
    if "://" not in text:
        text = "https://" + text.lstrip("/")
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower().rstrip(".")
        port = parts.port
    except ValueError:
        return text, None
    if host.startswith("www."):
        host = host[4:]
    if not host:
        return text, None
    netloc = f"{host}:{port}" if port else host
    path = parts.path if parts.path not in ("", "/") else ""
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, "")), host
