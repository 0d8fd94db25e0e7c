"""Salvage: copy every row that can still be read from a damaged library file into the new one.

When the library file cannot be opened (garbled, truncated), it is set aside and a new file is started
(``backend/db/store.py``). Before anyone uses the new file, the damaged one is attached **read-only** (it is never
written) and each of Atelier's tables is copied: the whole table at once when it reads back, otherwise in chunks of
rows by ``rowid``, halving a chunk that fails until single rows, so each readable row is kept and only the
unreadable ones are lost. What DuckDB can read depends on where the damage is: its catalog must be readable
(a file cut before it, or a garbled header, gives nothing), and each column segment is read whole, so rows are
lost a segment at a time. See docs/data.md ("A damaged library").
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from backend.db import search as search_index

log = logging.getLogger(__name__)

CHUNK = 2048
# A library whose every row is unreadable must not keep Atelier from starting for long.
BUDGET_SECONDS = 60.0
# Derived or bookkeeping tables: the new file has its own.
_SKIP = {"schema_migrations", "search_terms"}


@dataclass
class Salvaged:
    rows: int = 0
    tables: dict[str, int] = field(default_factory=dict)
    lost: dict[str, int] = field(default_factory=dict)  # rows known to exist that could not be read
    readable: bool = False  # whether the damaged file's catalog could be read at all

    @property
    def generations(self) -> int:
        return self.tables.get("generations", 0)


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def salvage(con: duckdb.DuckDBPyConnection, damaged: Path) -> Salvaged:
    """Copy what can be read from ``damaged`` into the (freshly migrated) database ``con``; never raises."""
    result = Salvaged()
    deadline = time.monotonic() + BUDGET_SECONDS
    try:
        con.execute(f"ATTACH {_quoted(damaged)} AS damaged (READ_ONLY)")
    except duckdb.Error as exc:
        log.warning("nothing could be read from %s: %s", damaged.name, exc)
        return result
    try:
        try:
            theirs = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'damaged'").fetchall()}
        except duckdb.Error as exc:
            log.warning("the tables of %s could not be listed: %s", damaged.name, exc)
            return result
        result.readable = True
        ours = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = 'main' ORDER BY table_name").fetchall()]
        for table in ours:
            if table in _SKIP or table not in theirs:
                continue
            saved, lost = _copy_table(con, table, deadline)
            result.tables[table] = saved
            result.rows += saved
            if lost:
                result.lost[table] = lost
        con.execute("BEGIN TRANSACTION")
        search_index.rebuild(con)
        con.execute("COMMIT")
    except duckdb.Error as exc:  # the new file itself failed: keep what was committed, report it
        log.error("salvage from %s stopped: %s", damaged.name, exc)
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
    finally:
        with contextlib.suppress(duckdb.Error):
            con.execute("DETACH damaged")
    log.warning("salvaged %d rows from %s (%s); unreadable: %s", result.rows, damaged.name, result.tables,
                result.lost or "none")
    return result


def _columns(con: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? AND table_schema = 'main' "
        "AND table_name = ? ORDER BY ordinal_position", [catalog, table]).fetchall()]


def _copy_table(con: duckdb.DuckDBPyConnection, table: str, deadline: float) -> tuple[int, int]:
    """(rows saved, rows known lost) for one table."""
    ours = _columns(con, con.execute("SELECT current_database()").fetchone()[0], table)
    theirs = set(_columns(con, "damaged", table))
    cols = ", ".join(f'"{c}"' for c in ours if c in theirs)
    insert = f"INSERT OR IGNORE INTO main.{table} ({cols}) SELECT {cols} FROM damaged.main.{table}"  # noqa: S608

    def copy(where: str = "") -> int | None:
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(insert + where)
            n = con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0]  # noqa: S608
            con.execute("COMMIT")
            return int(n)
        except duckdb.Error:
            with contextlib.suppress(duckdb.Error):
                con.execute("ROLLBACK")
            return None

    if copy() is not None:
        return _count(con, table), 0
    try:
        total = int(con.execute(f"SELECT count(*) FROM damaged.main.{table}").fetchone()[0])  # noqa: S608
    except duckdb.Error:
        return 0, 0
    pending = [(start, min(start + CHUNK, total)) for start in range(0, total, CHUNK)]
    lost = 0
    while pending:
        start, end = pending.pop(0)
        if time.monotonic() > deadline:
            lost += end - start
            continue
        if copy(f" WHERE rowid >= {start} AND rowid < {end}") is not None:
            continue
        if end - start == 1:
            lost += 1
            continue
        middle = (start + end) // 2
        pending[:0] = [(start, middle), (middle, end)]
    return _count(con, table), lost


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM main.{table}").fetchone()[0])  # noqa: S608


def describe(result: Salvaged) -> str:
    """How the notice says what was saved."""
    if not result.rows:
        return "no row of it could be read back"
    return (f"{result.rows:,} rows that could still be read ({result.generations:,} generations) were saved into "
            "the new library")
