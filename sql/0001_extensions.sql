-- Extensions. The seed's tables use uuid_generate_v4() (uuid-ossp), which Supabase provides.
-- The embedded PostgreSQL ships without contrib modules, so there the same function name is
-- defined over the built-in gen_random_uuid(): one set of migration files runs on both.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'uuid-ossp') THEN
        CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
    ELSIF NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'uuid_generate_v4') THEN
        CREATE FUNCTION uuid_generate_v4() RETURNS uuid LANGUAGE sql VOLATILE AS 'SELECT gen_random_uuid()';
    END IF;
END
$$;

CREATE EXTENSION IF NOT EXISTS vector;

-- updated_at maintained by trigger on every table that has it
CREATE OR REPLACE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
