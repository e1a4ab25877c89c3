-- Term statistics of the knowledge chunks: in how many chunks each full-text lexeme occurs.
-- Hybrid search keeps the rarest words of a question for its full-text part (an IDF-style
-- pruning), so a question made of common words does not make it rank most of the table.
-- Refreshed by the core after each embedding run (ts_stat over knowledge_chunks.tsv); the row
-- with lexeme '' holds the number of chunks at that time. Lexemes not (yet) here count as rare.
CREATE TABLE knowledge_terms (
    lexeme  text PRIMARY KEY,
    chunks  integer NOT NULL
);
