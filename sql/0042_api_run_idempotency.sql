-- A caller retrying a flow trigger with the same Idempotency-Key gets the run it already started.
ALTER TABLE api_flow_runs ADD COLUMN idempotency_key text;
CREATE UNIQUE INDEX api_flow_runs_idempotency_idx ON api_flow_runs (requested_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
