-- What client ingestion needs: a natural key for idempotent upserts, the website, where a row came
-- from, and a record of every ingestion run with its rejected rows.
--
-- Natural key rule (computed by the core, proposalflow/clients/normalise.py):
--   'domain:' || normalised website host   when the row has a valid website  (www. stripped, lowercase)
--   'ext:'    || external id               else, when the row has an external id
--   'name:'   || normalised name           else (lowercase, punctuation and extra spaces removed)
ALTER TABLE clients
    ADD COLUMN natural_key text,
    ADD COLUMN website     text,
    ADD COLUMN domain      text,
    ADD COLUMN external_id text,
    ADD COLUMN source      text;

UPDATE clients
   SET natural_key = 'name:' || trim(regexp_replace(lower(name), '[^[:alnum:]&]+', ' ', 'g'))
 WHERE natural_key IS NULL;
ALTER TABLE clients ALTER COLUMN natural_key SET NOT NULL;
ALTER TABLE clients ADD CONSTRAINT clients_natural_key_key UNIQUE (natural_key);
CREATE INDEX clients_domain_idx ON clients (domain);

CREATE TABLE ingestion_runs (
    id           uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    source       text NOT NULL,
    format       text,
    status       text NOT NULL DEFAULT 'staged' CHECK (status IN ('staged', 'completed', 'abandoned')),
    flow_run_id  text,
    rows_read    integer NOT NULL DEFAULT 0,
    inserted     integer,
    updated      integer,
    unchanged    integer,
    rejected     integer NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);

CREATE TABLE ingestion_rejects (
    id          bigserial PRIMARY KEY,
    run_id      uuid NOT NULL REFERENCES ingestion_runs (id) ON DELETE CASCADE,
    file        text NOT NULL,
    row_number  integer NOT NULL,
    column_name text,
    reason      text NOT NULL,
    raw_row     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingestion_rejects_run_idx ON ingestion_rejects (run_id, row_number);

-- Validated rows wait here between the staging step and the upsert step of one run.
-- UNLOGGED: it is scratch space, rebuilt by re-running, so it skips the write-ahead log.
CREATE UNLOGGED TABLE client_staging (
    run_id       uuid NOT NULL REFERENCES ingestion_runs (id) ON DELETE CASCADE,
    row_number   integer NOT NULL,
    natural_key  text NOT NULL,
    name         text NOT NULL,
    website      text,
    domain       text,
    external_id  text,
    contact_info jsonb NOT NULL,
    source       text NOT NULL
);
CREATE INDEX client_staging_run_idx ON client_staging (run_id);
