-- Proposal generation: versions, runs, conversation and status history.
--
-- `proposals` is the proposal as people know it (one id, a status, the current version's title and
-- content — what delivery renders). Every version ever saved stays in `proposal_versions`:
-- a regeneration or a revision adds version N+1 and makes it current. `proposal_runs` is one
-- generation or revision attempt; its id keys the LangGraph checkpoints (thread_id), so a run that
-- was killed resumes where it stopped.
ALTER TABLE proposals
    ADD COLUMN title             text,
    ADD COLUMN version           integer NOT NULL DEFAULT 0,   -- current version; 0 until the first is saved
    ADD COLUMN flow_run_id       text,                         -- the Prefect flow run that made the current version
    ADD COLUMN brief             text,
    ADD COLUMN template          text,
    ADD COLUMN status_changed_at timestamptz NOT NULL DEFAULT now();

-- 'generating' is the state of a proposal whose first version is being written.
ALTER TABLE proposals ADD CONSTRAINT proposals_status_check CHECK (status IN
    ('generating', 'draft', 'in_review', 'approved', 'sent', 'rejected', 'failed', 'archived'));
CREATE INDEX proposals_status_idx ON proposals (status);

CREATE TABLE proposal_versions (
    proposal_id   uuid NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    title         text NOT NULL,
    content       jsonb NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('generated', 'revised')),
    instruction   text,                 -- the user's words, for a revision
    diff_summary  text,                 -- what changed against the previous version
    run_id        uuid UNIQUE,          -- the run that saved it: a resumed run never saves twice
    flow_run_id   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (proposal_id, version)
);

CREATE TABLE proposal_runs (
    id            uuid PRIMARY KEY DEFAULT uuid_generate_v4(),   -- = LangGraph thread_id
    proposal_id   uuid NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    client_id     uuid NOT NULL REFERENCES clients (id),
    kind          text NOT NULL CHECK (kind IN ('generate', 'revise')),
    request_key   text NOT NULL,        -- sha256 of what was asked: an identical request resumes this run
    brief         text,
    template      text,
    instruction   text,
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed', 'failed')),
    attempts      integer NOT NULL DEFAULT 1,
    flow_run_id   text,
    version       integer,              -- the version it saved
    error         text,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE INDEX proposal_runs_unfinished_idx ON proposal_runs (request_key) WHERE status <> 'completed';
CREATE INDEX proposal_runs_proposal_idx ON proposal_runs (proposal_id);

-- The conversation about a proposal: user instructions and the assistant's answers, in order.
CREATE TABLE proposal_messages (
    id           bigserial PRIMARY KEY,
    proposal_id  uuid NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('user', 'assistant')),
    content      text NOT NULL,
    version      integer,               -- the version this message produced or was about
    run_id       uuid,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX proposal_messages_proposal_idx ON proposal_messages (proposal_id, id);
CREATE UNIQUE INDEX proposal_messages_run_role_idx ON proposal_messages (run_id, role) WHERE run_id IS NOT NULL;

-- Every status change, who made it and why.
CREATE TABLE proposal_status_history (
    id           bigserial PRIMARY KEY,
    proposal_id  uuid NOT NULL REFERENCES proposals (id) ON DELETE CASCADE,
    from_status  text,
    to_status    text NOT NULL,
    actor        text,
    note         text,
    version      integer,
    changed_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX proposal_status_history_proposal_idx ON proposal_status_history (proposal_id, id);
