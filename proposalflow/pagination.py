"""Keyset pagination: pages that stay correct while rows are added or removed between requests.

A page is ordered by one sort key plus the row id (the tie-breaker), and the cursor carries the
last row's (sort value, id). The next page is `WHERE (key, id) > (value, id)` — no OFFSET, so page
1,000 costs what page 1 costs, and no row is skipped or repeated when earlier rows change.

The cursor is opaque to callers (base64url JSON) and names its sort, so a cursor from another
sort order is refused rather than silently misread.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Generic, Literal, Sequence, TypeVar

from .errors import ValidationFailed

T = TypeVar("T")


@dataclass(frozen=True)
class SortKey:
    column: str  # SQL expression (trusted: comes from code, never from the request)
    kind: Literal["text", "timestamp", "int"]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    limit: int
    sort: str


@dataclass(frozen=True)
class Keyset:
    """What a list query adds: `where` (or None), its params, and the ORDER BY … LIMIT clause."""

    where: str | None
    params: list[Any]
    order_limit: str
    sort: str
    limit: int
    key: SortKey
    id_column: str

    def page(self, rows: Sequence[T], value_of: Callable[[T], Any], id_of: Callable[[T], Any]) -> Page[T]:
        """`rows` as fetched (limit + 1 of them at most): the page and the cursor to the next one."""
        items = list(rows[: self.limit])
        cursor = None
        if len(rows) > self.limit and items:
            last = items[-1]
            cursor = encode_cursor(self.sort, value_of(last), id_of(last))
        return Page(items, cursor, self.limit, self.sort)


def keyset(sort: str, keys: dict[str, SortKey], *, limit: int, cursor: str | None,
           id_column: str = "id") -> Keyset:
    """`sort` is a key name, `-name` for descending. Raises ValidationFailed naming the parameter."""
    name = sort[1:] if sort.startswith("-") else sort
    if name not in keys:
        raise ValidationFailed(f"cannot sort by {name!r}; sort by one of: {', '.join(sorted(keys))} "
                               "(prefix with - for descending)", [{"field": "sort", "message": "unknown sort key"}])
    key = keys[name]
    descending = sort.startswith("-")
    direction = "DESC" if descending else "ASC"
    order_limit = f"ORDER BY {key.column} {direction}, {id_column} {direction} LIMIT {int(limit) + 1}"
    where, params = None, []
    if cursor:
        value, last_id = decode_cursor(cursor, sort, key)
        where = f"({key.column}, {id_column}) {'<' if descending else '>'} (%s, %s)"
        params = [value, last_id]
    return Keyset(where, params, order_limit, sort, limit, key, id_column)


def encode_cursor(sort: str, value: Any, row_id: Any) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    document = json.dumps({"s": sort, "v": value, "id": str(row_id)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str, key: SortKey) -> tuple[Any, Any]:
    def invalid(why: str) -> ValidationFailed:
        return ValidationFailed(f"invalid cursor: {why}; use the next_cursor of the previous page",
                                [{"field": "cursor", "message": why}])

    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid("not a cursor this service issued") from None
    if not isinstance(document, dict) or not {"s", "v", "id"} <= document.keys():
        raise invalid("not a cursor this service issued")
    if document["s"] != sort:
        raise invalid(f"it belongs to sort {document['s']!r}, not {sort!r}")
    value = document["v"]
    try:
        if key.kind == "timestamp":
            value = datetime.fromisoformat(value)
        elif key.kind == "int":
            value = int(value)
        elif not isinstance(value, str):
            raise TypeError
        row_id = document["id"]
        row_id = uuid.UUID(row_id) if _looks_like_uuid(row_id) else int(row_id)
    except (TypeError, ValueError):
        raise invalid("its position is malformed") from None
    return value, row_id


def _looks_like_uuid(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 36 and value.count("-") == 4


def clamp_limit(limit: int | None, default: int, maximum: int) -> int:
    """The page size: `default` when not given, never above `maximum` (larger requests are capped)."""
    if limit is None:
        return min(default, maximum)
    if limit < 1:
        raise ValidationFailed("limit must be at least 1", [{"field": "limit", "message": "must be at least 1"}])
    return min(limit, maximum)
