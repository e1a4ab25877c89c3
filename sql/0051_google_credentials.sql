-- Google OAuth2 user credentials from `proposalflow google auth` (the installed-app consent flow).
--
-- `encrypted` is a Fernet token (PROPOSALFLOW_FERNET_KEY) of the authorized-user JSON: refresh
-- token, client id and secret, token URI, scopes. Nothing secret is stored in clear; without the
-- key the row is useless. A service account (GOOGLE_APPLICATION_CREDENTIALS) needs no row here.
CREATE TABLE google_credentials (
    name           text PRIMARY KEY DEFAULT 'default',   -- one authorised user per name
    account_email  text,                                 -- who consented, when known
    scopes         text[] NOT NULL,
    encrypted      bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER google_credentials_updated_at BEFORE UPDATE ON google_credentials
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- Nobody reads or writes credentials through Supabase's REST API, not even admins.
DO $$
BEGIN
    IF to_regprocedure('public.protect_table(regclass, text, text)') IS NOT NULL THEN
        PERFORM public.protect_table('google_credentials', NULL, NULL);
    ELSE
        ALTER TABLE google_credentials ENABLE ROW LEVEL SECURITY;
    END IF;
END
$$;
