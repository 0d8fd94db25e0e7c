"""Named, append-only schema migrations.

Each entry is applied once, inside a transaction, and recorded in ``schema_migrations``. Never edit an entry
that has shipped: append a new one. ``tests/test_migrations.py`` migrates a blank database and checks the
exact resulting schema.

JSON values are stored as VARCHAR holding JSON text: DuckDB's json extension may need a download, and a
packaged offline app must work with the core alone.
"""

from __future__ import annotations

import duckdb

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE preferences (
            key VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL,            -- JSON text
            updated_at TIMESTAMPTZ NOT NULL
        );

        CREATE TABLE generations (
            id VARCHAR PRIMARY KEY,            -- our id (uuid4 hex)
            kind VARCHAR NOT NULL,             -- text | image | video
            status VARCHAR NOT NULL,           -- queued | running | succeeded | failed | interrupted | cancelled
            model VARCHAR NOT NULL,
            prompt VARCHAR NOT NULL,
            system VARCHAR,
            params VARCHAR NOT NULL DEFAULT '{}',          -- JSON object
            input_asset_ids VARCHAR NOT NULL DEFAULT '[]', -- JSON array
            stream BOOLEAN NOT NULL DEFAULT false,
            title VARCHAR,
            tags VARCHAR[] NOT NULL DEFAULT [],
            favorite BOOLEAN NOT NULL DEFAULT false,
            output_text VARCHAR,
            reasoning_text VARCHAR,
            prompt_tokens BIGINT,
            completion_tokens BIGINT,
            cost_usd DOUBLE,
            upstream_id VARCHAR,               -- OpenRouter generation id (gen-…)
            upstream_model VARCHAR,            -- the model that actually answered
            job_id VARCHAR,                    -- OpenRouter video job id
            polling_url VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            error VARCHAR,                     -- JSON {"code","message","upstream_status"?}
            next_attempt_at TIMESTAMPTZ,
            created_at TIMESTAMPTZ NOT NULL,
            started_at TIMESTAMPTZ,
            finished_at TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX generations_created ON generations (created_at);

        CREATE TABLE attempts (
            generation_id VARCHAR NOT NULL,
            number INTEGER NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            outcome VARCHAR,                   -- succeeded | retry | rejected | unknown | interrupted | cancelled
            http_status INTEGER,
            error_code VARCHAR,
            error_message VARCHAR,
            PRIMARY KEY (generation_id, number)
        );

        CREATE TABLE assets (
            id VARCHAR PRIMARY KEY,            -- our id (uuid4 hex); the only handle the API exposes
            generation_id VARCHAR,             -- NULL for uploaded reference images
            role VARCHAR NOT NULL,             -- output | input
            kind VARCHAR NOT NULL,             -- image | video | audio | file
            mime VARCHAR NOT NULL,
            bytes BIGINT NOT NULL,
            sha256 VARCHAR NOT NULL,           -- file name under media/ (content addressed)
            width INTEGER,
            height INTEGER,
            duration_s DOUBLE,
            thumb_sha256 VARCHAR,              -- thumbnail file (images), NULL when none
            position INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX assets_generation ON assets (generation_id);
        CREATE INDEX assets_sha ON assets (sha256);

        CREATE TABLE model_cache (
            output VARCHAR NOT NULL,           -- text | image | video
            id VARCHAR NOT NULL,
            data VARCHAR NOT NULL,             -- JSON object as OpenRouter returned it
            fetched_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (output, id)
        );

        CREATE TABLE meta (
            key VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL
        );
        """,
    ),
    (
        "0002_templates",
        """
        CREATE TABLE templates (
            id VARCHAR PRIMARY KEY,            -- uuid4 hex
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,             -- text | image | video
            prompt VARCHAR NOT NULL,           -- Jinja2 source
            system VARCHAR,                    -- Jinja2 source
            model VARCHAR,                     -- default model, NULL for the user's default
            params VARCHAR NOT NULL DEFAULT '{}',  -- JSON object
            tags VARCHAR[] NOT NULL DEFAULT [],
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX templates_created ON templates (created_at);
        """,
    ),
    (
        "0003_collections",
        """
        CREATE TABLE collections (
            id VARCHAR PRIMARY KEY,            -- uuid4 hex
            name VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX collections_created ON collections (created_at);

        CREATE TABLE collection_items (
            collection_id VARCHAR NOT NULL,
            generation_id VARCHAR NOT NULL,
            added_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (collection_id, generation_id)
        );
        CREATE INDEX collection_items_generation ON collection_items (generation_id);
        """,
    ),
    (
        "0004_conversations",
        """
        CREATE TABLE conversations (
            id VARCHAR PRIMARY KEY,            -- uuid4 hex (a migrated one-turn conversation keeps its turn's id)
            title VARCHAR,                     -- NULL until set; the API shows the first prompt then
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL    -- last activity: a new turn, a new title
        );

        ALTER TABLE generations ADD COLUMN conversation_id VARCHAR;
        ALTER TABLE generations ADD COLUMN parent_id VARCHAR;          -- the turn this one answers after
        ALTER TABLE generations ADD COLUMN context_dropped_turns INTEGER;  -- oldest turns left out to fit the model
        CREATE INDEX generations_conversation ON generations (conversation_id);
        CREATE INDEX generations_parent ON generations (parent_id);

        INSERT INTO conversations (id, title, created_at, updated_at)
            SELECT id, title, created_at, updated_at FROM generations WHERE kind = 'text';
        UPDATE generations SET conversation_id = id WHERE kind = 'text'
        """,
    ),
    (
        "0005_batches",
        """
        ALTER TABLE generations ADD COLUMN template_id VARCHAR;   -- the template the prompt was rendered from
        ALTER TABLE generations ADD COLUMN variables VARCHAR;     -- JSON object: the values it was rendered with
        ALTER TABLE generations ADD COLUMN batch_id VARCHAR;      -- the batch (or compare) it belongs to
        CREATE INDEX generations_batch ON generations (batch_id);

        CREATE TABLE batches (
            id VARCHAR PRIMARY KEY,            -- uuid4 hex
            name VARCHAR,
            kind VARCHAR NOT NULL,             -- text | image | video
            models VARCHAR[] NOT NULL,
            template_id VARCHAR,
            prompt VARCHAR,                    -- the plain prompt (NULL with a template)
            system VARCHAR,
            params VARCHAR NOT NULL DEFAULT '{}',  -- JSON object
            tags VARCHAR[] NOT NULL DEFAULT [],
            rows_count INTEGER NOT NULL,
            repeats INTEGER NOT NULL,
            total INTEGER NOT NULL,
            state VARCHAR NOT NULL,            -- active | paused | cancelled
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        );
        CREATE INDEX batches_created ON batches (created_at);
        """,
    ),
    (
        "0006_search",
        r"""
        CREATE TABLE search_terms (
            term VARCHAR NOT NULL,             -- a maximal run of letters and digits, lower-cased
            days DATE[] NOT NULL               -- the UTC days (created_at) of generations that used it
        );

        INSERT INTO search_terms (term, days)
        SELECT t AS term, list(DISTINCT d ORDER BY d) AS days FROM (
            SELECT DISTINCT timezone('UTC', created_at)::DATE AS d,
                   unnest(regexp_extract_all(lower(concat_ws(' ', prompt, output_text, title)), '[\pL\pN]+')) AS t
            FROM generations
        ) GROUP BY t ORDER BY term;
        """,
    ),
    (
        "0007_cost_lookups",
        """
        CREATE TABLE cost_lookups (
            upstream_id VARCHAR PRIMARY KEY,   -- OpenRouter generation id (gen-…) whose stats are looked up
            generation_id VARCHAR NOT NULL,    -- our generation it belongs to
            stopped_at TIMESTAMPTZ NOT NULL,   -- when that generation ended; the schedule counts from here
            tries INTEGER NOT NULL DEFAULT 0,  -- lookups that did not find the cost (404, no cost yet, an error)
            state VARCHAR NOT NULL,            -- pending | found | gave_up | dropped
            updated_at TIMESTAMPTZ NOT NULL
        );
        """,
    ),
]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL)"
    )
    done = {row[0] for row in con.execute("SELECT name FROM schema_migrations").fetchall()}
    applied = []
    for name, sql in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in _split_sql(sql):
                con.execute(statement)
            con.execute("INSERT INTO schema_migrations VALUES (?, now())", [name])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()
    return bool(row and row[0])


def _split_sql(sql: str) -> list[str]:
    """Split a migration into statements (our migrations have no semicolons inside literals)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
