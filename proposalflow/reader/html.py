"""HTML → Page fields: title, description, main text (trafilatura, as Markdown), links and the
page's structured data (schema.org JSON-LD, OpenGraph, meta tags, mailto:/tel: contacts)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html
import trafilatura
from trafilatura.settings import use_config

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.)+[A-Za-z]{2,24}(?![\w-])")
# international or North-American style numbers with separators; at least 8 digits overall
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w])")
_MAX_LINKS = 500
OPENGRAPH_PREFIXES = ("og:", "article:", "business:")  # → structured["opengraph"]
META_NAMES = frozenset({"description", "generator", "keywords", "author", "twitter:description", "twitter:title",
                        "application-name"})  # → structured["meta"]
_MAX_JSON_LD_CHARS = 200_000
# small company pages (a contact page, a list of customers) are content too: lower trafilatura's
# minimum sizes, and no signal-based timeout (we run in worker threads)
_TRAFILATURA = use_config()
for _key, _value in {"MIN_EXTRACTED_SIZE": "10", "MIN_OUTPUT_SIZE": "10", "MIN_EXTRACTED_COMM_SIZE": "10",
                     "MIN_OUTPUT_COMM_SIZE": "10", "EXTRACTION_TIMEOUT": "0"}.items():
    _TRAFILATURA.set("DEFAULT", _key, _value)


def sort_meta_tags(pairs) -> tuple[dict[str, str], dict[str, str]]:
    """(name or property, content) pairs of a page's <meta> tags → (opengraph, meta): og:/article:/
    business: keys, and the descriptive names the extractor reads; the first of each key wins."""
    opengraph: dict[str, str] = {}
    meta: dict[str, str] = {}
    for key, value in pairs:
        key = str(key or "").strip().lower()
        if not key or not value:
            continue
        if key.startswith(OPENGRAPH_PREFIXES):
            opengraph.setdefault(key, value)
        elif key in META_NAMES:
            meta.setdefault(key, value)
    return opengraph, meta


def parse_html(html: str, url: str) -> dict[str, Any]:
    """The Page fields that come from the document itself (keys: title, description, content,
    links, structured). `url` is the page's final URL, the base for relative links."""
    try:
        tree = lxml.html.document_fromstring(html)
    except (lxml.etree.ParserError, ValueError):
        return {"title": None, "description": None, "content": "", "links": [], "structured": {}}
    base = tree.xpath("string(//base/@href)").strip()
    base_url = urljoin(url, base) if base else url

    opengraph, meta = sort_meta_tags(((node.get("property") or node.get("name") or ""), _clean(node.get("content")))
                                     for node in tree.xpath("//meta[@content]"))

    json_ld = _json_ld(tree)
    links, emails, phones = [], [], []
    seen = set()
    for node in tree.xpath("//a[@href]"):
        href = (node.get("href") or "").strip()
        lower = href.lower()
        if lower.startswith("mailto:"):
            emails.append(href[7:].split("?", 1)[0].strip())
            continue
        if lower.startswith("tel:"):
            phones.append(_clean(href[4:]))
            continue
        absolute = urldefrag(urljoin(base_url, href))[0]
        if urlsplit(absolute).scheme in ("http", "https") and absolute not in seen and len(links) < _MAX_LINKS:
            seen.add(absolute)
            links.append(absolute)

    for bad in tree.xpath("//script|//style|//noscript|//template"):
        bad.drop_tree()
    visible = _clean(tree.text_content()) or ""
    emails += EMAIL.findall(visible)
    phones = _phones_in_text(visible) + phones  # as written on the page first, then tel: links

    title = _clean(tree.xpath("string(//title)")) or opengraph.get("og:title")
    description = meta.get("description") or opengraph.get("og:description") or meta.get("twitter:description")
    content = trafilatura.extract(html, url=url, output_format="markdown", include_formatting=True,
                                  include_links=False, include_comments=False, include_tables=True,
                                  favor_recall=True, deduplicate=False, config=_TRAFILATURA) or ""
    if not content.strip():
        content = visible
    structured: dict[str, Any] = {}
    if json_ld:
        structured["json_ld"] = json_ld
    if opengraph:
        structured["opengraph"] = opengraph
    if meta:
        structured["meta"] = meta
    contacts = {"emails": _unique(e.lower() for e in emails if EMAIL.fullmatch(e)),
                "phones": _unique(p for p in phones if p)}
    if contacts["emails"] or contacts["phones"]:
        structured["contacts"] = contacts
    return {"title": title, "description": description, "content": content.strip(), "links": links,
            "structured": structured}


def parse_text(text: str) -> dict[str, Any]:
    """A text/plain body: its text is the content; contacts are still collected."""
    emails = _unique(e.lower() for e in EMAIL.findall(text))
    phones = _unique(_phones_in_text(text))
    structured = {"contacts": {"emails": emails, "phones": phones}} if emails or phones else {}
    return {"title": None, "description": None, "content": text.strip(), "links": [], "structured": structured}


def _phones_in_text(text: str) -> list[str]:
    """Numbers written like phone numbers: a leading + or (area code), 8+ digits — not years or prices."""
    return [m.strip() for m in PHONE.findall(text)
            if m.lstrip().startswith(("+", "(")) and 8 <= sum(c.isdigit() for c in m) <= 15]


def _json_ld(tree) -> list[dict]:
    objects: list[dict] = []
    for node in tree.xpath('//script[@type and contains(translate(@type, "LDJSON", "ldjson"), "ld+json")]'):
        text = (node.text or "").strip()
        if not text or len(text) > _MAX_JSON_LD_CHARS:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        _flatten(data, objects)
    return objects[:50]


def _flatten(data: Any, into: list[dict]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten(item, into)
    elif isinstance(data, dict):
        if "@graph" in data:
            _flatten(data["@graph"], into)
        if "@type" in data:
            into.append(data)


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = re.sub(r"\s+", " ", value).strip()
    return text or None


def _unique(values) -> list:
    return list(dict.fromkeys(values))
