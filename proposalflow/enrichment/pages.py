"""Which pages of a client's site to read after the home page: same-site links, ranked by how
likely they are to say what the company does, for whom, where, and how to reach it."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ..reader import Page

# (category, path words, weight): one page per category first, the best-scored of each
CATEGORIES: list[tuple[str, tuple[str, ...], int]] = [
    ("about", ("about", "about-us", "company", "who-we-are", "our-story", "story", "mission", "ueber-uns"), 10),
    ("services", ("services", "service", "solutions", "solution", "products", "product", "what-we-do", "offerings",
                  "capabilities", "expertise", "leistungen", "platform", "features"), 10),
    ("contact", ("contact", "contact-us", "kontakt", "locations", "offices", "impressum", "imprint"), 9),
    ("customers", ("customers", "clients", "case-studies", "case-study", "cases", "success-stories", "references",
                   "portfolio", "our-work", "work", "testimonials", "projects"), 8),
    ("industries", ("industries", "industry", "sectors", "markets", "who-we-serve", "who-we-help"), 7),
    ("team", ("team", "our-team", "people", "leadership", "management"), 5),
]
SKIP = re.compile(r"(privacy|cookie|terms|legal|login|log-in|signin|sign-in|signup|register|cart|checkout|account|"
                  r"feed|rss|wp-admin|wp-login|search|tag/|category/|author/|\?)", re.I)
FILES = re.compile(r"\.(pdf|jpe?g|png|gif|svg|webp|zip|docx?|xlsx?|pptx?|mp4|mp3|css|js|xml|json|ico)$", re.I)


def site_of(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host


def choose_pages(home: Page, limit: int) -> list[str]:
    """Up to `limit` same-site URLs from the home page's links, best first: the best page of each
    category (about, services, contact, customers, industries, team), then the next best overall."""
    if limit <= 0:
        return []
    site = site_of(home.final_url)
    seen = {_normal(home.url), _normal(home.final_url)}
    scored: list[tuple[int, int, int, int, str, str]] = []  # (-score, depth, category rank, order, category, url)
    for order, url in enumerate(home.links):
        normal = _normal(url)
        if normal in seen or site_of(url) != site:
            continue
        seen.add(normal)
        path = urlsplit(url).path.lower().rstrip("/")
        if not path or SKIP.search(path + ("?" if urlsplit(url).query else "")) or FILES.search(path):
            continue
        segments = [s for s in path.split("/") if s]
        best = max(((weight - 2 * (len(segments) - 1 - i), -rank, name)
                    for rank, (name, words, weight) in enumerate(CATEGORIES)
                    for i, segment in enumerate(segments) if _matches(segment, words)), default=None)
        if best is None:
            continue
        scored.append((-best[0], len(segments), -best[1], order, best[2], url))
    scored.sort()
    chosen: list[str] = []
    categories_taken: set[str] = set()
    for *_, category, url in scored:  # one per category first
        if category not in categories_taken and len(chosen) < limit:
            categories_taken.add(category)
            chosen.append(url)
    for *_, url in scored:  # then fill up with the rest, best first
        if len(chosen) >= limit:
            break
        if url not in chosen:
            chosen.append(url)
    return chosen


def _matches(segment: str, words: tuple[str, ...]) -> bool:
    stem = re.sub(r"\.(html?|php|aspx?)$", "", segment)
    return stem in words or any(stem.startswith(w + "-") or stem.endswith("-" + w) for w in words)


def _normal(url: str) -> str:
    parts = urlsplit(url)
    return f"{site_of(url)}{parts.path.rstrip('/') or '/'}?{parts.query}"
