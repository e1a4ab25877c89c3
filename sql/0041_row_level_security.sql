-- Row Level Security on every table, so the data stays safe when a Supabase project also exposes
-- the `public` schema through its own REST API (PostgREST) to the `anon` and `authenticated`
-- roles. The proposalflow API, the CLI and the flows connect as the tables' owner, which RLS does
-- not restrict: these policies govern the Supabase REST path (and any other role you grant to).
--
-- Policies decide by the app role in the caller's JWT, read the way Supabase does it
-- (`request.jwt.claims`): `app_metadata.role`, else `user_role` (a custom access token hook),
-- else the role stored in `users` for the token's `sub`. Roles: viewer < editor < admin.

-- 1. Supabase's database roles, where they are missing (embedded or plain PostgreSQL).
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['anon', 'authenticated'] LOOP
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', name);
            END IF;
        EXCEPTION
            WHEN duplicate_object THEN NULL;  -- another database on this server created it just now
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'cannot create role % (no CREATEROLE): policies apply to PUBLIC instead', name;
        END;
    END LOOP;
END
$$;

-- 2. Supabase's `auth` helpers, from the same settings PostgREST sets for each request. Where the
--    `auth` schema exists (Supabase), it and its functions are left alone.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'auth') THEN
        CREATE SCHEMA auth;
        CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $f$
            SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                            nullif(current_setting('request.jwt.claims', true), ''))::jsonb
        $f$;
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $f$
            SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
        $f$;
        CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $f$
            SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                            (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
        $f$;
        IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
            GRANT USAGE ON SCHEMA auth TO anon, authenticated;
        END IF;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
        GRANT USAGE ON SCHEMA public TO anon, authenticated;
    END IF;
END
$$;

-- 3. The caller's app role. SECURITY DEFINER: it reads `users` whatever the caller may see there.
CREATE FUNCTION public.app_role() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce(
        CASE WHEN auth.jwt() -> 'app_metadata' ->> 'role' IN ('viewer', 'editor', 'admin')
             THEN auth.jwt() -> 'app_metadata' ->> 'role' END,
        CASE WHEN auth.jwt() ->> 'user_role' IN ('viewer', 'editor', 'admin')
             THEN auth.jwt() ->> 'user_role' END,
        (SELECT u.role FROM users u WHERE u.id::text = auth.jwt() ->> 'sub'))
$$;

CREATE FUNCTION public.app_role_at_least(required text) RETURNS boolean
    LANGUAGE sql STABLE SET search_path = public, pg_temp AS $$
    SELECT coalesce(array_position(ARRAY['viewer', 'editor', 'admin'], public.app_role())
                    >= array_position(ARRAY['viewer', 'editor', 'admin'], required), false)
$$;

-- 4. protect_table: enable RLS on a table and (re)create its policies. `read_role`: the least app
--    role that may read it (NULL: nobody through the REST API); `write_role`: the least that may
--    insert, update and delete (NULL: only the owner, i.e. the product's own services).
--    Later migrations call it for the tables they create:  SELECT protect_table('my_table');
CREATE FUNCTION public.protect_table(target regclass, read_role text DEFAULT 'viewer',
                                     write_role text DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql AS $$
DECLARE
    grantee text := CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
                         THEN 'authenticated' ELSE 'public' END;
    policy record;
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    FOR policy IN SELECT polname FROM pg_policy WHERE polrelid = target AND polname LIKE 'pf\_%' LOOP
        EXECUTE format('DROP POLICY %I ON %s', policy.polname, target);
    END LOOP;
    IF read_role IS NOT NULL THEN
        EXECUTE format('CREATE POLICY pf_read ON %s FOR SELECT TO %s USING (public.app_role_at_least(%L))',
                       target, grantee, read_role);
    END IF;
    IF write_role IS NOT NULL THEN
        EXECUTE format('CREATE POLICY pf_insert ON %s FOR INSERT TO %s WITH CHECK (public.app_role_at_least(%L))',
                       target, grantee, write_role);
        EXECUTE format('CREATE POLICY pf_update ON %s FOR UPDATE TO %s USING (public.app_role_at_least(%L)) '
                       'WITH CHECK (public.app_role_at_least(%L))', target, grantee, write_role, write_role);
        EXECUTE format('CREATE POLICY pf_delete ON %s FOR DELETE TO %s USING (public.app_role_at_least(%L))',
                       target, grantee, write_role);
    END IF;
    -- Supabase grants table privileges to anon/authenticated by default; grant the same here so
    -- that RLS, not a missing grant, is what decides (and is what the tests exercise).
    IF grantee = 'authenticated' THEN
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO anon, authenticated', target);
    END IF;
END
$$;

-- 5. The tables. People edit clients, proposals and knowledge; everything else is written only by
--    the product's services and readable by viewers, except what no REST caller should see.
SELECT protect_table('clients', 'viewer', 'editor');
SELECT protect_table('proposals', 'viewer', 'editor');
SELECT protect_table('knowledge_base', 'viewer', 'editor');
SELECT protect_table('audit_log', 'admin', NULL);
SELECT protect_table('schema_migrations', NULL, NULL);
SELECT protect_table('client_staging', NULL, NULL);

-- users: everyone reads their own row, admins read all and set roles; rows are created by the API.
SELECT protect_table('users', 'admin', NULL);
DO $$
DECLARE
    grantee text := CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated')
                         THEN 'authenticated' ELSE 'public' END;
BEGIN
    EXECUTE format('CREATE POLICY pf_read_own ON users FOR SELECT TO %s USING (id::text = auth.jwt() ->> ''sub'')',
                   grantee);
    EXECUTE format('CREATE POLICY pf_update ON users FOR UPDATE TO %s USING (public.app_role_at_least(''admin'')) '
                   'WITH CHECK (public.app_role_at_least(''admin''))', grantee);
END
$$;

-- Every other table that exists now (ingestion runs and rejects, knowledge chunks, proposal
-- versions and runs, …): viewers read, only the services write. LangGraph's checkpoint tables hold
-- raw model state: nobody reads them through REST.
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
