"""Enriching clients: read the site (home page + the most telling pages), extract facts with their
sources, record the outcome on the client. Plain Python: the flow, the CLI, the benchmark and the
tests all call these functions, handing in the reader, the LLM extractor and the connection."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Callable

import psycopg

from ..errors import FetchFailed, UnsafeURL
from ..reader import Page, Reader
from ..reader.page import utcnow
from .extract import FactCollector, extract_deterministic
from .llm_extract import extract_with_llm
from .pages import choose_pages
from .schema import LIST_FIELDS, EnrichedCompany
from .store import ClientSite, record_outcome

# text fields the LLM states better than structured data; for the others structured data stands
LLM_WINS = ("summary", "industry")


@dataclass
class LLMConfig:
    extractor: object  # a structured runnable (llm_extract.structured_extractor)
    model: str


@dataclass
class Outcome:
    client_id: str
    name: str
    website: str | None
    status: str  # ok | partial | failed
    error: str | None = None
    company: EnrichedCompany | None = None
    pages_read: int = 0
    seconds: float = 0.0

    @property
    def fact_count(self) -> int:
        return self.company.fact_count if self.company else 0

    def as_dict(self) -> dict:
        return {"client_id": self.client_id, "name": self.name, "website": self.website, "status": self.status,
                "error": self.error, "facts": self.fact_count, "pages": self.pages_read,
                "fields": self.company.filled_fields if self.company else [], "seconds": round(self.seconds, 3)}


def enrich_client(client: ClientSite, reader: Reader, *, max_pages: int = 4, llm: LLMConfig | None = None) -> Outcome:
    """One client: never raises for the client's sake — every problem ends in the Outcome."""
    started = time.monotonic()
    outcome = Outcome(client.id, client.name, client.website, status="failed")
    try:
        if not client.website:
            outcome.error = "no website on record"
            return outcome
        try:
            home = reader.read(client.website)
        except (FetchFailed, UnsafeURL) as exc:
            outcome.error = f"home page: {exc}"
            return outcome
        pages, problems = [home], []
        for url in choose_pages(home, max_pages):
            try:
                pages.append(reader.read(url))
            except (FetchFailed, UnsafeURL) as exc:
                problems.append(str(exc))
        company = extract_deterministic(pages, website=client.website, enriched_at=utcnow())
        if llm is not None:
            company = merge_llm(company, pages, llm, client.name, problems)
        if company.fact_count == 0:
            problems.append("no facts found on the site")
        company = company.model_copy(update={"problems": problems})
        outcome.company, outcome.pages_read = company, len(pages)
        outcome.status = "partial" if problems else "ok"
        outcome.error = "; ".join(problems)[:2000] or None
    except Exception as exc:  # noqa: BLE001 - one broken client must not sink the batch
        outcome.status, outcome.error = "failed", f"internal error: {type(exc).__name__}: {str(exc)[:500]}"
    finally:
        outcome.seconds = time.monotonic() - started
    return outcome


def merge_llm(company: EnrichedCompany, pages: list[Page], llm: LLMConfig, client_name: str,
              problems: list[str]) -> EnrichedCompany:
    """The LLM's cited values merged over the deterministic ones: summary and industry are taken
    from the LLM, other text fields only fill gaps (structured data stands), lists are united."""
    extraction = extract_with_llm(pages, llm.extractor, model=llm.model, company_name=client_name)
    problems.extend(extraction.problems)
    if not extraction.ok:
        return company
    collector = FactCollector.of(company)
    for name, cited in extraction.values.items():
        if name in LLM_WINS and cited:
            value, _ = cited[0]
            collector.replace(name, value, [s for v, s in cited if v == value])
            continue
        for value, source in cited:
            collector.add(name, value, source)
            if name not in LIST_FIELDS:
                break
    merged = collector.build(website=company.website, pages=company.pages, enriched_at=company.enriched_at,
                             extracted_by=[*company.extracted_by, f"llm:{llm.model}"])
    return merged


def enrich_batch(conn: psycopg.Connection, clients: list[ClientSite], reader: Reader, *, max_pages: int = 4,
                 llm: LLMConfig | None = None, concurrency: int = 8,
                 on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Enrich clients concurrently (the reader's limits pace the requests) and record each outcome
    on its client as soon as it is known, in the calling thread (so `conn` is used by one thread).
    A failing client is recorded as failed; the others go on."""
    outcomes: list[Outcome] = []
    if not clients:
        return outcomes
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(clients))),
                            thread_name_prefix="enrich") as pool:
        futures = [pool.submit(enrich_client, client, reader, max_pages=max_pages, llm=llm) for client in clients]
        for future in as_completed(futures):
            outcome = future.result()
            record_outcome(conn, outcome.client_id, outcome.status, outcome.error,
                           outcome.company.to_stored() if outcome.company else None)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes


def llm_config(settings) -> LLMConfig | None:
    """The LLM extractor the settings ask for, or None offline."""
    from ..llm import make_chat_model
    from .llm_extract import model_name, structured_extractor

    model = make_chat_model(settings)
    if model is None:
        return None
    return LLMConfig(structured_extractor(model, settings.llm_structured_method), model_name(model))


def combine(batches: list[dict]) -> dict:
    """One summary from the batches' results (outcome dicts and reader counters)."""
    results = sorted((o for b in batches for o in b["outcomes"]), key=lambda o: (o["name"].lower(), o["client_id"]))
    reader: dict[str, int] = {}
    for batch in batches:
        for key, value in batch["reader"].items():
            reader[key] = reader.get(key, 0) + value
    counts = {status: sum(1 for o in results if o["status"] == status) for status in ("ok", "partial", "failed")}
    return {"clients": len(results), **counts, "facts": sum(o["facts"] for o in results),
            "pages": sum(o["pages"] for o in results), "reader": reader, "results": results}
