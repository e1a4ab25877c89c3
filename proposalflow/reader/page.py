"""What a reader returns: one web page as text plus what the page says about itself."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Page:
    """A fetched page. Everything in it came from the network: treat it as untrusted data.

    - `url`: the URL that was asked for; `final_url`: where it ended up after redirects.
    - `content`: the main text as Markdown (boilerplate such as menus removed where possible).
    - `links`: absolute http(s) links found on the page, in page order, without duplicates.
    - `structured`: what the page declares about itself: `json_ld` (list of schema.org objects,
      @graph flattened), `opengraph` (og:* → value), `meta` (name → content: description,
      generator, keywords …), `contacts` ({"emails": […], "phones": […]} from mailto:/tel: links
      and the page's whole visible text, footer included).
    - `reader`: which implementation fetched it (`direct`, `jina`); `from_cache` when it was served
      from the reader's cache instead of the network.
    """

    url: str
    final_url: str
    status: int
    title: str | None = None
    description: str | None = None
    content: str = ""
    links: list[str] = field(default_factory=list)
    structured: dict[str, Any] = field(default_factory=dict)
    fetched_at: datetime = field(default_factory=utcnow)
    content_type: str | None = None
    reader: str = "direct"
    from_cache: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["fetched_at"] = self.fetched_at.isoformat()
        data.pop("from_cache")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, from_cache: bool = False) -> "Page":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data and k != "from_cache"}
        fetched = known.get("fetched_at")
        if isinstance(fetched, str):
            known["fetched_at"] = datetime.fromisoformat(fetched)
        return cls(**known, from_cache=from_cache)
