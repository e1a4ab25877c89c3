-- The web reader's cache (proposalflow/reader/cache.py): one row per requested URL, the page as
-- JSON (title, description, content, links, structured data), when it was fetched, the HTTP
-- status, the reader that fetched it and a SHA-256 of the content. Rows younger than the TTL
-- (PROPOSALFLOW_READER_CACHE_TTL_HOURS) are served instead of fetching again.
CREATE TABLE reader_cache (
    url          text PRIMARY KEY,
    final_url    text NOT NULL,
    status       integer NOT NULL,
    reader       text NOT NULL,
    content_hash text NOT NULL,
    page         jsonb NOT NULL,
    fetched_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reader_cache_fetched_at_idx ON reader_cache (fetched_at);
