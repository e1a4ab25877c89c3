-- What the API service needs: users as seen in tokens, an append-only audit log of every write and
-- flow trigger, and the flow runs started through the API (so a run id from elsewhere is not
-- readable through it, and in-process runs can record their outcome).

ALTER TABLE users ADD COLUMN last_seen_at timestamptz;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('viewer', 'editor', 'admin'));

CREATE TABLE audit_log (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid,                -- users.id (no foreign key: the log outlives deleted users)
    actor_email  text,
    actor_role   text,
    action       text NOT NULL,       -- 'create', 'update', 'delete', 'trigger', 'upload', 'status', …
    resource     text NOT NULL,       -- 'clients', 'proposals', 'knowledge', 'runs', 'users'
    resource_id  text,
    request_id   text,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_resource_idx ON audit_log (resource, resource_id, at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);
CREATE INDEX audit_log_request_idx ON audit_log (request_id);

-- Append-only: rows are never changed or removed through SQL (TRUNCATE by the owner is still possible
-- for a deliberate purge).
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE api_flow_runs (
    flow_run_id   uuid PRIMARY KEY,   -- the Prefect flow run id
    flow          text NOT NULL,      -- 'ingest-clients', …
    mode          text NOT NULL CHECK (mode IN ('deployment', 'in-process')),
    parameters    jsonb NOT NULL DEFAULT '{}'::jsonb,
    requested_by  uuid,
    request_id    text,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    state         text,               -- last state recorded by an in-process run (deployment runs: Prefect's)
    result        jsonb,              -- the flow's return value, when it is a JSON document
    error         text,
    finished_at   timestamptz
);
CREATE INDEX api_flow_runs_requested_idx ON api_flow_runs (requested_at DESC);
