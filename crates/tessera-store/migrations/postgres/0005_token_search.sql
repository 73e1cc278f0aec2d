-- Search and filters over many tokens (a million and more).
--
-- Name substring search: a GIN trigram index (pg_trgm) over `name_key`, which the
-- planner uses for the list's `name_key LIKE '%…%'` itself when the pattern has a
-- trigram (three characters or more); shorter patterns scan as before. pg_trgm is a
-- trusted extension (PostgreSQL 13+): the database's owner may create it. An
-- extension lives in one schema per database, which may not be on this schema's search
-- path (several installations in one database, each in its own schema): the operator
-- class is named with the schema the extension is in.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
DO $$
DECLARE
    trgm_schema TEXT;
BEGIN
    SELECT namespace.nspname INTO trgm_schema
        FROM pg_extension extension
        JOIN pg_namespace namespace ON namespace.oid = extension.extnamespace
        WHERE extension.extname = 'pg_trgm';
    EXECUTE format(
        'CREATE INDEX tokens_name_trigrams ON tokens USING gin (name_key %I.gin_trgm_ops)',
        trgm_schema
    );
END
$$;

-- The status and type filters, and their counts, from an index rather than the rows.
CREATE INDEX tokens_status ON tokens(kind, status, expires_at);
CREATE INDEX tokens_expires ON tokens(kind, expires_at);
CREATE INDEX tokens_type ON tokens(kind, token_type, created_at);
