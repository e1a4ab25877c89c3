"""Website snapshots shipped with the package (proposalflow/data/sites/, made by
bench/make_site_snapshots.py) for the offline demo.

They reach the reader through its own code path: each snapshot is parsed by the same HTML parser
the direct reader uses and stored in the reader's cache, so enrichment then reads them like any
cached page — no network. Snapshot rows never expire (the cache serves them whatever their age and
never deletes them), so neither a later demo run nor the daily schedule fetches the sample
companies' real sites; a second seeding leaves them alone and parses nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

from ..reader import DatabaseCache, Page, cache_key
from ..reader.cache import SNAPSHOT_READER
from ..reader.html import parse_html
from ..reader.page import utcnow


def manifest(sites_dir: Path) -> dict[str, dict[str, str]]:
    """home URL → {path → file relative to sites_dir}."""
    return json.loads((sites_dir / "manifest.json").read_text(encoding="utf-8"))["sites"]


def home_urls(sites_dir: Path) -> list[str]:
    return sorted(manifest(sites_dir))


def snapshot_pages(sites_dir: Path, *, skip_keys: set[str] = frozenset()) -> list[Page]:
    pages = []
    now = utcnow()
    for home, files in manifest(sites_dir).items():
        for path, file in files.items():
            url = home if path == "/" else urljoin(home + "/", path.lstrip("/"))
            if cache_key(url) in skip_keys:
                continue
            fields = parse_html((sites_dir / file).read_text(encoding="utf-8"), url)
            pages.append(Page(url=url, final_url=url, status=200, fetched_at=now, content_type="text/html",
                              reader=SNAPSHOT_READER, **fields))
    return pages


def seed_cache(cache: DatabaseCache, sites_dir: Path) -> dict[str, int]:
    """Put the snapshots into the reader's cache, except entries that are still fresh."""
    urls = [home if path == "/" else urljoin(home + "/", path.lstrip("/"))
            for home, files in manifest(sites_dir).items() for path in files]
    fresh = cache.fresh_keys(urls)
    pages = snapshot_pages(sites_dir, skip_keys=fresh)
    cache.put_many(pages, only_if_stale=True)
    return {"pages": len(urls), "seeded": len(pages), "already_cached": len(fresh)}
