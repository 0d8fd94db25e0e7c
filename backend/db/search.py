"""The search prefilter: which UTC days hold a generation with a given word, kept on every write.

``search_terms`` has one row per distinct word (a maximal run of letters and digits, lower-cased) ever seen in a
generation's prompt, output or title, with the list of UTC days (of ``created_at``) whose generations used it.
A search for ``q`` splits ``q`` the same way; every piece of ``q`` must be a substring of some word of a
matching generation, so only the days where each piece is inside some word can hold a match. The real match
(``ILIKE`` on prompt, output and title) then runs on those days' rows only, newest day first, and stops as soon
as the page is full. The index is a superset: a deleted or edited generation may leave a day behind, which costs a
little time and never a wrong answer. See docs/data.md ("Search").

Every write of ``prompt``, ``output_text`` or ``title`` calls :func:`index` in the same transaction
(``backend/db/generations.py`` and the import). Migration ``0006_search`` fills it for existing rows with the
same SQL (``tests/test_search_index.py`` checks that both agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

# One word = a maximal run of Unicode letters and digits. The same pattern splits the query (see pieces()).
WORD = r"[\pL\pN]+"

# The (term, days) pairs of the generations chosen by ``{where}``.
_PAIRS = (
    "SELECT t AS term, list(DISTINCT d ORDER BY d) AS days FROM ("  # noqa: S608 - constant text
    "SELECT DISTINCT timezone('UTC', created_at)::DATE AS d, "
    "unnest(regexp_extract_all(lower(concat_ws(' ', prompt, output_text, title)), '" + WORD + "')) AS t "
    "FROM generations WHERE {where}) GROUP BY t"
)

def index(cur: Any, ids: Sequence[str]) -> None:
    """Inside a write transaction: add the words of generations ``ids`` (as stored now) to the index."""
    ids = list(ids)
    if not ids:
        return
    pairs = _PAIRS.format(where="list_contains(?::VARCHAR[], id)")
    cur.execute(
        f"UPDATE search_terms s SET days = list_sort(list_distinct(list_concat(s.days, n.days))) "  # noqa: S608
        f"FROM ({pairs}) n WHERE s.term = n.term AND NOT list_has_all(s.days, n.days)",
        [ids],
    )
    cur.execute(
        f"INSERT INTO search_terms (term, days) SELECT n.term, n.days FROM ({pairs}) n "  # noqa: S608
        "WHERE NOT EXISTS (SELECT 1 FROM search_terms s WHERE s.term = n.term)",
        [ids],
    )


def rebuild(cur: Any) -> None:
    """Inside a write transaction: index every generation afresh (after a restore or a salvage filled the table
    with rows that did not come through :func:`index`)."""
    cur.execute("DELETE FROM search_terms")
    cur.execute(f"INSERT INTO search_terms (term, days) {_PAIRS.format(where='true')} ORDER BY term")  # noqa: S608


def pieces(cur: Any, q: str) -> list[str]:
    """The words of ``q`` split and lower-cased exactly as the index splits text; empty when it has none."""
    cur.execute(f"SELECT regexp_extract_all(lower(?), '{WORD}')", [q])
    row = cur.fetchone()
    return list(dict.fromkeys(row[0] if row and row[0] else []))


def candidate_days(cur: Any, words: Sequence[str]) -> list[date]:
    """Days (newest first) where every piece of the query is inside some indexed word."""
    days: set[date] | None = None
    for word in sorted(words, key=len, reverse=True):  # the longest piece is usually the rarest
        cur.execute("SELECT DISTINCT unnest(days) FROM search_terms WHERE contains(term, ?)", [word])
        found = {row[0] for row in cur.fetchall()}
        days = found if days is None else days & found
        if not days:
            return []
    return sorted(days or (), reverse=True)
