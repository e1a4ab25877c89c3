-- Client enrichment (the enrich-clients flow): the outcome of the last attempt on each client.
--   enrichment_status  ok | partial | failed   (NULL: never attempted)
--   enriched_at        when that outcome was recorded
--   enrichment_error   why a client is failed or partial (pages that failed, an LLM answer refused …)
-- enriched_data (from 0002) holds the sourced facts, proposalflow/enrichment/schema.py; a failed
-- attempt keeps the facts of the last successful one.
ALTER TABLE clients
    ADD COLUMN enrichment_status text CHECK (enrichment_status IN ('ok', 'partial', 'failed')),
    ADD COLUMN enriched_at       timestamptz,
    ADD COLUMN enrichment_error  text;

-- "never enriched, failed, or enriched before <cut-off>" is the flow's selection
CREATE INDEX clients_enrichment_due_idx ON clients (enriched_at NULLS FIRST) WHERE website IS NOT NULL;
