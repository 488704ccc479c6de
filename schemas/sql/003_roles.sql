-- 003_roles.sql: two group roles for administrators to grant to login roles.
--
--   leadflow_projector  writes the funnel schema's tables (what
--                       leadflow-project and leadflow-replay do), creates
--                       its TEMP staging tables, and nothing outside funnel.
--   leadflow_analyst    reads every table and view in funnel, and calls the
--                       read-only *_filtered functions behind the views;
--                       writes nothing.
--
--   GRANT leadflow_analyst TO alice;          -- alice: a LOGIN role
--
-- Neither may log in, own, or create anything in funnel: DDL stays with the
-- role that applies the migrations (the owner of the funnel objects).
-- Roles belong to the whole cluster, not to this database, so they are
-- created only when missing (another database of the cluster may have made
-- them); the grants are per database and made here.
--
-- The ALTER DEFAULT PRIVILEGES below cover objects that the role applying
-- this migration creates later in funnel (the next migrations), so apply
-- every migration as that same role.
--
-- Left as PostgreSQL ships it: PUBLIC may CONNECT to the database and create
-- TEMP tables there (session-private, gone at disconnect), and since
-- PostgreSQL 15 PUBLIC may not create in schema public. An administrator who
-- wants analysts without even TEMP tables runs
-- REVOKE TEMPORARY ON DATABASE ... FROM PUBLIC.

DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT * FROM (VALUES
            ('leadflow_projector',
             'leadflow: writes the funnel schema''s tables (grant to the '
             'login role of leadflow-project and leadflow-replay).'),
            ('leadflow_analyst',
             'leadflow: reads the funnel schema''s tables and views, writes '
             'nothing (grant to analysts'' and dashboards'' login roles).'))
            AS v (name, note)
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles
                       WHERE rolname = r.name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOSUPERUSER '
                               'NOCREATEDB NOCREATEROLE NOREPLICATION',
                               r.name);
                EXECUTE format('COMMENT ON ROLE %I IS %L', r.name, r.note);
            EXCEPTION
                -- Another database's migration created it meanwhile (the
                -- advisory lock serialises one database only).
                WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
    -- The database's name is only known here; %I quotes it.
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO '
                   'leadflow_projector', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO leadflow_analyst',
                   current_database());
END
$$;

-- Nobody else reaches into funnel (a new schema grants PUBLIC nothing; this
-- says so).
REVOKE ALL ON SCHEMA funnel FROM PUBLIC;
GRANT USAGE ON SCHEMA funnel TO leadflow_projector, leadflow_analyst;

-- The projector: rows in, rows out, staging via TEMP tables. No CREATE on
-- funnel and none on the database, so it cannot add objects anywhere.
-- TRUNCATE is for rebuilds (leadflow-replay). "ALL TABLES" includes the
-- views, where writing is refused anyway (they are not updatable).
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
    ON ALL TABLES IN SCHEMA funnel TO leadflow_projector;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA funnel
    TO leadflow_projector;

-- The analyst: SELECT, and EXECUTE on the views' functions (SECURITY
-- INVOKER, read-only: they see what the caller may read).
GRANT SELECT ON ALL TABLES IN SCHEMA funnel TO leadflow_analyst;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA funnel TO leadflow_analyst;

-- The same for what later migrations create in funnel.
ALTER DEFAULT PRIVILEGES IN SCHEMA funnel
    GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES
    TO leadflow_projector;
ALTER DEFAULT PRIVILEGES IN SCHEMA funnel
    GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO leadflow_projector;
ALTER DEFAULT PRIVILEGES IN SCHEMA funnel
    GRANT SELECT ON TABLES TO leadflow_analyst;
ALTER DEFAULT PRIVILEGES IN SCHEMA funnel
    GRANT EXECUTE ON FUNCTIONS TO leadflow_analyst;
