"""A blank database migrates to exactly the expected schema, once."""

from __future__ import annotations

from pathlib import Path

import duckdb

from backend.db.migrations import MIGRATIONS
from backend.db.store import Store, migrate

EXPECTED = {
    "schema_migrations": ["name", "applied_at"],
    "preferences": ["key", "value", "updated_at"],
    "generations": [
        "id", "kind", "status", "model", "prompt", "system", "params", "input_asset_ids", "stream", "title",
        "tags", "favorite", "output_text", "reasoning_text", "prompt_tokens", "completion_tokens", "cost_usd",
        "upstream_id", "upstream_model", "job_id", "polling_url", "attempts", "error", "next_attempt_at",
        "created_at", "started_at", "finished_at", "updated_at", "conversation_id", "parent_id",
        "context_dropped_turns", "template_id", "variables", "batch_id",
    ],
    "attempts": [
        "generation_id", "number", "started_at", "finished_at", "outcome", "http_status", "error_code",
        "error_message",
    ],
    "assets": [
        "id", "generation_id", "role", "kind", "mime", "bytes", "sha256", "width", "height", "duration_s",
        "thumb_sha256", "position", "created_at",
    ],
    "model_cache": ["output", "id", "data", "fetched_at"],
    "meta": ["key", "value"],
    "collections": ["id", "name", "created_at", "updated_at"],
    "collection_items": ["collection_id", "generation_id", "added_at"],
    "conversations": ["id", "title", "created_at", "updated_at"],
    "batches": [
        "id", "name", "kind", "models", "template_id", "prompt", "system", "params", "tags", "rows_count", "repeats",
        "total", "state", "created_at", "updated_at",
    ],
    "templates": ["id", "name", "kind", "prompt", "system", "model", "params", "tags", "created_at", "updated_at"],
    "search_terms": ["term", "days"],
    "cost_lookups": ["upstream_id", "generation_id", "stopped_at", "tries", "state", "updated_at"],
}


def schema(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        "SELECT table_name, column_name FROM information_schema.columns ORDER BY table_name, ordinal_position"
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def test_blank_database_gets_the_exact_schema(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    applied = migrate(con)
    assert applied == [name for name, _ in MIGRATIONS]
    assert schema(con) == EXPECTED
    recorded = [r[0] for r in con.execute("SELECT name FROM schema_migrations ORDER BY name").fetchall()]
    assert recorded == sorted(name for name, _ in MIGRATIONS)


def test_migrations_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb"
    Store.open(path).close()
    con = duckdb.connect(str(path))
    assert migrate(con) == []
    assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)


def test_migration_names_are_unique_and_ordered() -> None:
    names = [name for name, _ in MIGRATIONS]
    assert len(set(names)) == len(names)
    assert names == sorted(names)
