-- Delivery (deliver-proposal): an approved proposal becomes a document and an email, exactly once.
--
-- `deliveries` is one delivery of one proposal version to one target ('google': a Google Doc in the
-- client's Drive folder + a Gmail draft; 'local': .docx/.html files + an .eml in the outbox).
-- `delivery_steps` holds the idempotency key of every side effect of a delivery — (proposal,
-- version, target, step) — checked before the side effect is made and marked done right after it:
-- a re-run after a crash between "document created" and "draft created" makes only the draft.
-- A step left 'pending' (the process died between the remote call and the commit) is first looked
-- up remotely by its key (Drive appProperties, the draft's Message-ID) before it is made again.
ALTER TABLE clients ADD COLUMN drive_folder_id text;        -- the client's Google Drive folder, created once

-- The last delivery's ids and paths live under metadata->'delivery' (Drive folder/file ids, the
-- draft id, local file paths); proposals.doc_link holds the document's link.
ALTER TABLE proposals ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;

CREATE TABLE deliveries (
    id            uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
    proposal_id   uuid NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    target        text NOT NULL CHECK (target IN ('google', 'local')),
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
    mail_state    text CHECK (mail_state IN ('draft', 'sent')),   -- what became of the email
    doc_link      text,
    result        jsonb NOT NULL DEFAULT '{}'::jsonb,             -- ids, links and paths, as reported
    error         text,                                           -- the last failure, for a 'failed' run
    attempts      integer NOT NULL DEFAULT 1,
    flow_run_id   text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (proposal_id, version, target)
);
CREATE TRIGGER deliveries_updated_at BEFORE UPDATE ON deliveries
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE delivery_steps (
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    step             text NOT NULL CHECK (step IN ('document', 'share', 'message', 'send')),
    idempotency_key  text NOT NULL UNIQUE,   -- proposal:<id>:v<version>:<target>:<step>
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done', 'failed')),
    result           jsonb,                  -- what the side effect made (ids, links, paths)
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    started_at       timestamptz NOT NULL DEFAULT now(),
    completed_at     timestamptz,
    PRIMARY KEY (delivery_id, step)
);

-- Row Level Security like every other table (sql/0041_row_level_security.sql): viewers read
-- deliveries through Supabase's REST API, only the product's services write them. Where 0041's
-- `protect_table` is not there, RLS is still enabled (no policy: no REST caller sees a row).
DO $$
BEGIN
    IF to_regprocedure('public.protect_table(regclass, text, text)') IS NOT NULL THEN
        PERFORM public.protect_table('deliveries', 'viewer', NULL);
        PERFORM public.protect_table('delivery_steps', 'viewer', NULL);
    ELSE
        ALTER TABLE deliveries ENABLE ROW LEVEL SECURITY;
        ALTER TABLE delivery_steps ENABLE ROW LEVEL SECURITY;
    END IF;
END
$$;
