"""Where a client file comes from: a local path, or an http(s) URL downloaded to a local file."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import SourceUnreadable
from ..http import download

_CONTENT_TYPES = {
    "text/csv": "csv", "text/tab-separated-values": "csv", "text/plain": "csv",
    "application/json": "json",
    "application/x-ndjson": "jsonl", "application/jsonl": "jsonl", "application/x-jsonlines": "jsonl",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
}


@dataclass(frozen=True)
class LocalSource:
    path: Path
    display_name: str  # what messages and rejects call the file: the path or URL as given
    format: str | None = None  # known from a download's Content-Type; else detected from the file


def is_url(path_or_url: str) -> bool:
    return urlsplit(path_or_url).scheme in ("http", "https")


def resolve_source(path_or_url: str, download_dir: Path) -> LocalSource:
    if is_url(path_or_url):
        name = Path(urlsplit(path_or_url).path).name or "download"
        digest = hashlib.sha256(path_or_url.encode()).hexdigest()[:12]
        dest = download_dir / f"{digest}-{name}"
        headers = download(path_or_url, dest)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        fmt = None if Path(name).suffix else _CONTENT_TYPES.get(content_type)
        return LocalSource(dest, path_or_url, fmt)
    path = Path(path_or_url).expanduser()
    if not path.exists():
        raise SourceUnreadable(f"{path_or_url}: no such file")
    if path.is_dir():
        raise SourceUnreadable(f"{path_or_url}: is a folder; give one client file")
    return LocalSource(path.resolve(), path_or_url)
