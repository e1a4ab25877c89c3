"""The deterministic extractor (always runs): what pages state in structured form — schema.org
JSON-LD, OpenGraph, meta tags —, contacts found by pattern (mailto:/tel: links, e-mail and phone
patterns), social profile links, the page's own description, headings of service and customer
pages, and plain sentences such as "founded in 2011" or "a team of 85 people" (only where the
structured data says nothing). Every value is recorded with the page it came from."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable
from urllib.parse import urlsplit

from ..reader import Page
from ..reader.html import EMAIL
from .pages import site_of
from .schema import LIST_FIELDS, EnrichedCompany, FactSource, PageRead

ORG_TYPES = {"organization", "corporation", "localbusiness", "professionalservice", "ngo", "educationalorganization",
             "medicalorganization", "sportsorganization", "governmentorganization", "store", "onlinebusiness",
             "onlinestore", "newsmediaorganization", "performinggroup", "project", "researchorganization"}
NOT_ORG_TYPES = {"website", "webpage", "breadcrumblist", "imageobject", "person", "article", "blogposting",
                 "searchaction", "listitem", "product", "offer", "event", "faqpage", "question", "answer",
                 "review", "aggregaterating", "videoobject", "collectionpage", "aboutpage", "contactpage",
                 "sitenavigationelement", "postaladdress", "place"}
GENERIC_TYPES = {"organization", "corporation", "localbusiness", "onlinebusiness", "thing"}
SOCIAL_HOSTS = ("linkedin.com", "twitter.com", "x.com", "facebook.com", "instagram.com", "youtube.com",
                "github.com", "xing.com", "tiktok.com", "pinterest.com", "vimeo.com", "medium.com", "threads.net",
                "bsky.app", "mastodon.social", "crunchbase.com", "glassdoor.com")
SHARE_PATH = re.compile(r"/(sharer|share|intent|sharearticle|shareArticle|dialog)(/|\.php|$|\?)", re.I)
FILE_TLDS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ico", "bmp"}
PLACEHOLDER_EMAILS = re.compile(r"^(example|name|email|your|user|test|info@example|you)@|@(example\.(com|org|net)|"
                                r"domain\.com|email\.com|sentry\.io|wixpress\.com)$", re.I)
# NAICS sector codes (first two digits) → sector name
NAICS_SECTORS = {
    "11": "Agriculture, forestry, fishing and hunting", "21": "Mining, quarrying, and oil and gas extraction",
    "22": "Utilities", "23": "Construction", "31": "Manufacturing", "32": "Manufacturing", "33": "Manufacturing",
    "42": "Wholesale trade", "44": "Retail trade", "45": "Retail trade", "48": "Transportation and warehousing",
    "49": "Transportation and warehousing", "51": "Information", "52": "Finance and insurance",
    "53": "Real estate and rental and leasing", "54": "Professional, scientific, and technical services",
    "55": "Management of companies and enterprises", "56": "Administrative and support services",
    "61": "Educational services", "62": "Health care and social assistance", "71": "Arts, entertainment, and recreation",
    "72": "Accommodation and food services", "81": "Other services", "92": "Public administration",
}
TECHNOLOGIES = ("Python", "Java", "JavaScript", "TypeScript", "Go", "Rust", "Kotlin", "Swift", ".NET", "PHP", "Ruby",
                "React", "Angular", "Vue", "Node.js", "Django", "PostgreSQL", "MySQL", "MongoDB", "Redis",
                "Kafka", "Kubernetes", "Docker", "Terraform", "AWS", "Azure", "Google Cloud", "Snowflake",
                "Databricks", "Salesforce", "SAP", "HubSpot", "Shopify", "WordPress", "Magento", "Oracle",
                "Microsoft 365", "Power BI", "Tableau", "TensorFlow", "PyTorch", "OpenAI")
SERVICE_PATHS = re.compile(r"(services?|solutions?|products?|what-we-do|offerings|capabilities|expertise|platform)", re.I)
CUSTOMER_PATHS = re.compile(r"(customers|clients|case-stud|cases|success-stories|references|portfolio|our-work)", re.I)
GENERIC_HEADINGS = re.compile(r"\b(our|services|solutions|products|customers|clients|case stud|testimonials|"
                              r"contact|about|get in touch|why|how we|what we|learn more|read more|newsletter)\b", re.I)
HEADING = re.compile(r"^#{2,3}\s+(.+?)\s*#*\s*$", re.M)
FOUNDED_TEXT = re.compile(r"\b(?:founded|established|incorporated)\b[^.\n]{0,40}?\b((?:18|19|20)\d{2})\b", re.I)
SIZE_TEXT = re.compile(r"\b(\d{1,3}(?:,\d{3})?)\s*\+?\s+(?:employees|people|staff|team members|colleagues)\b", re.I)


class FactCollector:
    """Values per field with the pages that state them; the first value of a text field wins.
    A value keeps up to MAX_SOURCES_PER_VALUE pages; the field's sources are the union."""

    MAX_SOURCES_PER_VALUE = 3

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.value_sources: dict[str, dict[str, list[FactSource]]] = {}
        self._keys: dict[str, dict[str, str]] = {}  # field → dedupe key → the value as first written

    def add(self, field: str, value: Any, page: Page | FactSource | Iterable[FactSource]) -> bool:
        """Record `value` for `field` from `page` (or given sources). False if it was not taken."""
        text = _clean(value)
        if not text:
            return False
        if isinstance(page, Page):
            sources = [FactSource(url=page.final_url, fetched_at=page.fetched_at)]
        elif isinstance(page, FactSource):
            sources = [page]
        else:
            sources = list(page)
        if not sources:
            return False
        keys = self._keys.setdefault(field, {})
        key = _key(field, text)
        if key in keys:
            text = keys[key]
        elif field in LIST_FIELDS:
            keys[key] = text
            self.values.setdefault(field, []).append(text)
        elif field in self.values:
            return False  # a text field keeps its first value
        else:
            keys[key] = text
            self.values[field] = text
        known = self.value_sources.setdefault(field, {}).setdefault(text, [])
        for source in sources:
            if source not in known and len(known) < self.MAX_SOURCES_PER_VALUE:
                known.append(source)
        return True

    def replace(self, field: str, value: Any, sources: list[FactSource]) -> None:
        """Set a text field to `value`, dropping what it held."""
        self.values.pop(field, None)
        self.value_sources.pop(field, None)
        self._keys.pop(field, None)
        self.add(field, value, sources)

    def build(self, **extra: Any) -> EnrichedCompany:
        sources: dict[str, list[FactSource]] = {}
        for field, by_value in self.value_sources.items():
            for value_sources in by_value.values():
                for source in value_sources:
                    if source not in sources.setdefault(field, []):
                        sources[field].append(source)
        value_sources = {field: {value: [s.url for s in srcs] for value, srcs in by_value.items()}
                         for field, by_value in self.value_sources.items() if field in LIST_FIELDS}
        return EnrichedCompany(**self.values, sources=sources, value_sources=value_sources, **extra)

    @classmethod
    def of(cls, company: EnrichedCompany) -> "FactCollector":
        """A collector holding `company`'s facts, to merge more into."""
        collector = cls()
        by_url: dict[str, list[FactSource]] = {}
        for field, sources in company.sources.items():
            for source in sources:
                by_url.setdefault(f"{field}\n{source.url}", []).append(source)
        for fact in company.facts():
            sources = [s for url in fact.urls for s in by_url.get(f"{fact.field}\n{url}", [])]
            collector.add(fact.field, fact.value, sources)
        return collector


def extract_deterministic(pages: list[Page], *, website: str | None = None,
                          enriched_at: datetime | None = None) -> EnrichedCompany:
    """Facts from the pages (home page first) without a language model."""
    facts = FactCollector()
    home_site = site_of(pages[0].final_url) if pages else ""
    for page in pages:
        for obj in _organisations(page):
            _from_organisation(facts, obj, page)
    for page in pages:  # weaker sources after structured data, so they only fill gaps
        og = page.structured.get("opengraph", {})
        meta = page.structured.get("meta", {})
        facts.add("name", og.get("og:site_name") or meta.get("application-name"), page)
        if page is pages[0]:
            facts.add("summary", page.description, page)
        contacts = page.structured.get("contacts", {})
        for email in contacts.get("emails", []):
            if _plausible_email(email):
                facts.add("emails", email.lower(), page)
        for phone in contacts.get("phones", []):
            facts.add("phones", phone, page)
        for link in page.links:
            if _is_social(link, home_site):
                facts.add("social_profiles", link.rstrip("/"), page)
        generator = meta.get("generator")
        if generator:
            facts.add("technologies", re.sub(r"\s+[\d.]+$", "", generator), page)
        for tech in TECHNOLOGIES:
            if re.search(rf"(?<![\w.]){re.escape(tech)}(?![\w])", page.content):
                facts.add("technologies", tech, page)
        founded = FOUNDED_TEXT.search(page.content)
        if founded and int(founded.group(1)) <= page.fetched_at.year:
            facts.add("founded", founded.group(1), page)
        size = SIZE_TEXT.search(page.content)
        if size:
            facts.add("company_size", f"{size.group(1)} employees", page)
        path = urlsplit(page.final_url).path
        if page is not pages[0] and SERVICE_PATHS.search(path):
            for heading in _headings(page):
                facts.add("services", heading, page)
        if page is not pages[0] and CUSTOMER_PATHS.search(path):
            for heading in _headings(page):
                facts.add("notable_customers", heading, page)
    return facts.build(website=website, extracted_by=["deterministic"], enriched_at=enriched_at,
                       pages=[PageRead(url=p.final_url, title=p.title, fetched_at=p.fetched_at, reader=p.reader)
                              for p in pages])


# --- schema.org ------------------------------------------------------------------------------------

def _types(obj: dict) -> list[str]:
    kinds = obj.get("@type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return [str(k).rsplit("/", 1)[-1] for k in kinds if k]


def _organisations(page: Page) -> list[dict]:
    found = []
    for obj in page.structured.get("json_ld", []):
        if not isinstance(obj, dict):
            continue
        kinds = {k.lower() for k in _types(obj)}
        if kinds & ORG_TYPES or (not kinds & NOT_ORG_TYPES and
                                 any(k in obj for k in ("address", "telephone", "foundingDate", "numberOfEmployees"))):
            found.append(obj)
    return found


def _from_organisation(facts: FactCollector, obj: dict, page: Page) -> None:
    facts.add("name", obj.get("legalName") if not obj.get("name") else obj.get("name"), page)
    facts.add("summary", obj.get("description"), page)
    specific = [k for k in _types(obj) if k.lower() not in GENERIC_TYPES]
    if obj.get("industry"):
        facts.add("industry", _text(obj["industry"]), page)
    elif obj.get("naics") and str(obj["naics"])[:2] in NAICS_SECTORS:
        facts.add("industry", NAICS_SECTORS[str(obj["naics"])[:2]], page)
    elif specific:
        facts.add("industry", _words(specific[0]), page)
    for address in _many(obj.get("address")) + _many(obj.get("location")):
        facts.add("locations", _address(address), page)
    for area in _many(obj.get("areaServed")):
        facts.add("locations", _text(area), page)
    for phone in _many(obj.get("telephone")):
        facts.add("phones", phone, page)
    for email in _many(obj.get("email")):
        email = str(email).removeprefix("mailto:").strip().lower()
        if EMAIL.fullmatch(email):
            facts.add("emails", email, page)
    for point in _many(obj.get("contactPoint")):
        if isinstance(point, dict):
            for phone in _many(point.get("telephone")):
                facts.add("phones", phone, page)
            for email in _many(point.get("email")):
                if EMAIL.fullmatch(str(email).removeprefix("mailto:")):
                    facts.add("emails", str(email).removeprefix("mailto:").lower(), page)
    for profile in _many(obj.get("sameAs")):
        if isinstance(profile, str) and urlsplit(profile).scheme in ("http", "https"):
            facts.add("social_profiles", profile.rstrip("/"), page)
    facts.add("company_size", _employees(obj.get("numberOfEmployees")), page)
    founded = _text(obj.get("foundingDate"))
    if founded:
        match = re.match(r"^(\d{4})(-\d{2}-\d{2})?", founded)
        facts.add("founded", match.group(1) if match else founded, page)
    for offer in _many(obj.get("makesOffer")):
        item = offer.get("itemOffered") if isinstance(offer, dict) else None
        facts.add("services", _text(item) if item else _text(offer), page)
    catalog = obj.get("hasOfferCatalog")
    for item in _many(catalog.get("itemListElement") if isinstance(catalog, dict) else None):
        offered = item.get("itemOffered", item) if isinstance(item, dict) else item
        facts.add("services", _text(offered), page)
    for topic in _many(obj.get("knowsAbout")):
        facts.add("services", _text(topic), page)
    for audience in _many(obj.get("audience")):
        facts.add("target_customers", _text(audience.get("audienceType") if isinstance(audience, dict) else audience),
                  page)
    for customer in _many(obj.get("customer")) + _many(obj.get("client")):
        facts.add("notable_customers", _text(customer), page)


def _many(value: Any) -> list:
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        return _text(value.get("name") or value.get("@value") or value.get("value"))
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _address(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    if value.get("address") and not value.get("addressLocality"):
        return _address(value["address"])
    country = value.get("addressCountry")
    parts = [value.get("addressLocality"), value.get("addressRegion"), _text(country)]
    text = ", ".join(str(p) for p in parts if p)
    return text or _text(value)


def _employees(value: Any) -> str | None:
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        return f"{int(float(value))} employees"
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if value.get("value") is not None:
            return _employees(value["value"])
        low, high = value.get("minValue"), value.get("maxValue")
        if low is not None and high is not None:
            return f"{low}–{high} employees"
        if low is not None:
            return f"{low}+ employees"
    return None


def _words(type_name: str) -> str:
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", type_name)
    return spaced[:1].upper() + spaced[1:].lower()


def _headings(page: Page) -> Iterable[str]:
    count = 0
    for heading in HEADING.findall(page.content):
        heading = re.sub(r"[*_`]", "", heading).strip()
        if 3 <= len(heading) <= 80 and not GENERIC_HEADINGS.search(heading) and not heading.endswith("?"):
            yield heading
            count += 1
            if count >= 12:
                return


def _plausible_email(email: str) -> bool:
    tld = email.rsplit(".", 1)[-1].lower()
    return bool(EMAIL.fullmatch(email)) and tld not in FILE_TLDS and not PLACEHOLDER_EMAILS.search(email)


def _is_social(url: str, home_site: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    if host == home_site or not any(host == h or host.endswith("." + h) for h in SOCIAL_HOSTS):
        return False
    return len(parts.path.strip("/")) > 0 and not SHARE_PATH.search(parts.path)


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = re.sub(r"\s+", " ", str(value)).strip()
    return text[:500] or None


def _key(field: str, text: str) -> str:
    if field == "phones":
        return re.sub(r"\D", "", text)[-9:]
    if field == "social_profiles":
        return text.lower().replace("://www.", "://").rstrip("/")
    return text.lower()
