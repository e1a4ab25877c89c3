"""Client enrichment: a client's website → `clients.enriched_data`, facts with their sources.

reader (proposalflow.reader) → pages.choose_pages → extract_deterministic (+ extract_with_llm,
merged over it) → EnrichedCompany (schema.py) → store.record_outcome.
"""
