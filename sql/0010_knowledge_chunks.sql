-- The knowledge base: the seed's `knowledge_base` stays the document table; its chunks, with
-- their embeddings and full-text vectors, live in `knowledge_chunks`.
--
-- The embedding column is declared without a dimension here: the dimension belongs to the
-- embedding model, which is recorded in `knowledge_embedding_model` the first time something is
-- embedded. The core (proposalflow/knowledge/store.py) then fixes the column to vector(N) and
-- builds the HNSW index; starting with another model is refused until `proposalflow kb reembed`.

ALTER TABLE knowledge_base
    ADD COLUMN title          text,
    ADD COLUMN source_uri     text,
    ADD COLUMN content_hash   text,
    -- how the stored chunks were made ("<model>|<chunker settings>"); NULL = needs (re-)embedding
    ADD COLUMN chunked_with   text,
    ADD COLUMN chunk_count    integer NOT NULL DEFAULT 0,
    ADD COLUMN embedded_at    timestamptz;

UPDATE knowledge_base SET source_uri = 'legacy:' || id WHERE source_uri IS NULL;
ALTER TABLE knowledge_base ALTER COLUMN source_uri SET NOT NULL;
ALTER TABLE knowledge_base ADD CONSTRAINT knowledge_base_source_uri_key UNIQUE (source_uri);
CREATE INDEX knowledge_base_category_idx ON knowledge_base (category);

CREATE TABLE knowledge_chunks (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id  uuid NOT NULL REFERENCES knowledge_base (id) ON DELETE CASCADE,
    position     integer NOT NULL,
    -- copied from the document so filtered vector searches need no join
    category     text,
    heading      text,
    text         text NOT NULL,
    char_count   integer NOT NULL,
    token_count  integer NOT NULL,
    embedding    vector NOT NULL,
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', coalesce(heading, '')), 'A') ||
                     setweight(to_tsvector('english', text), 'B')) STORED,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT knowledge_chunks_document_position_key UNIQUE (document_id, position)
);
CREATE INDEX knowledge_chunks_tsv_idx ON knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_category_idx ON knowledge_chunks (category);

-- One row: the model every stored embedding was made with.
CREATE TABLE knowledge_embedding_model (
    singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    provider     text NOT NULL,
    model        text NOT NULL,
    dimension    integer NOT NULL CHECK (dimension > 0),
    recorded_at  timestamptz NOT NULL DEFAULT now()
);

-- Documents that could not be read or embedded, with the reason; cleared when they succeed.
CREATE TABLE knowledge_failures (
    source_uri   text PRIMARY KEY,
    reason       text NOT NULL,
    flow_run_id  text,
    failed_at    timestamptz NOT NULL DEFAULT now()
);
