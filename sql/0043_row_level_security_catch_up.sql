-- Row Level Security for tables that reached a database after 0041 ran there (migrations of a lower
-- number applied later, e.g. knowledge_terms from 0011 or reader_cache from 0021 on a database
-- migrated before they existed). Same defaults as 0041: viewers read, only the services write;
-- LangGraph's checkpoint tables are hidden. Idempotent: tables that already have RLS are left alone.
DO $$
DECLARE
    t record;
BEGIN
    FOR t IN SELECT c.oid::regclass AS rel, c.relname
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity LOOP
        IF t.relname LIKE 'checkpoint%' THEN
            PERFORM protect_table(t.rel, NULL, NULL);
        ELSE
            PERFORM protect_table(t.rel, 'viewer', NULL);
        END IF;
    END LOOP;
END
$$;

-- The web page cache holds whole pages fetched from client websites: nothing a REST caller needs.
SELECT protect_table('reader_cache', NULL, NULL) WHERE to_regclass('public.reader_cache') IS NOT NULL;
