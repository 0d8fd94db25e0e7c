"""The search prefilter: which UTC days hold a generation with a given word, kept on every write.

``search_terms`` has one row per distinct word (a maximal run of letters and digits, lower-cased) ever seen in a
generation's prompt, output or title, with the list of UTC days (of ``created_at``) whose generations used it.
A search for ``q`` splits ``q`` the same way; every piece of ``q`` must be a substring of some word of a
matching generation, so only the days where each piece is inside some word can hold a match. The real match
(``ILIKE`` on prompt, output and title) then runs on those days' rows only, newest day first, and stops as soon
as the page is full; :func:`probes` gives the ranges of time a listing or a search looks in, in order. The index
is a superset: a deleted or edited generation may leave a day behind, which costs a
little time and never a wrong answer. See docs/data.md ("Search").

Every write of ``prompt``, ``output_text`` or ``title`` calls :func:`index` in the same transaction
(``backend/db/generations.py`` and the import); a new generation is indexed right after its insert's commit
(``backend/db/group_commit.py``), with :func:`index_unfinished` catching up at start-up. Migration
``0006_search`` fills it for existing rows with the
same SQL (``tests/test_search_index.py`` checks that both agree).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
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
    """Inside a write transaction: add the words of generations ``ids`` (as stored now) to the index.

    The words are extracted once and passed back as lists: each statement that runs the regular expression
    costs DuckDB ~2 ms of compiling it, whatever the number of rows."""
    ids = list(ids)
    if not ids:
        return
    cur.execute(_PAIRS.format(where="list_contains(?::VARCHAR[], id)"), [ids])
    pairs = cur.fetchall()
    if not pairs:
        return
    found = [[term for term, _ in pairs], [days for _, days in pairs]]
    new = "SELECT unnest(?::VARCHAR[]) AS term, unnest(?::DATE[][]) AS days"
    cur.execute(
        f"UPDATE search_terms s SET days = list_sort(list_distinct(list_concat(s.days, n.days))) "  # noqa: S608
        f"FROM ({new}) n WHERE s.term = n.term AND NOT list_has_all(s.days, n.days)",
        found,
    )
    cur.execute(
        f"INSERT INTO search_terms (term, days) SELECT n.term, n.days FROM ({new}) n "  # noqa: S608
        "WHERE NOT EXISTS (SELECT 1 FROM search_terms s WHERE s.term = n.term)",
        found,
    )


def index_unfinished(cur: Any) -> None:
    """Inside a write transaction, at start-up: index the Studio's generations still waiting or running. New
    generations are indexed right after their insert's commit (``backend/db/group_commit.py``); an app stopped in
    between would otherwise leave them out until they end. Batch items are indexed in their insert's own
    transaction."""
    cur.execute("SELECT id FROM generations WHERE status IN ('queued', 'running') AND batch_id IS NULL")
    index(cur, [r[0] for r in cur.fetchall()])


def rebuild(cur: Any) -> None:
    """Inside a write transaction: index every generation afresh (after a restore or a salvage filled the table
    with rows that did not come through :func:`index`)."""
    cur.execute("DELETE FROM search_terms")
    cur.execute(f"INSERT INTO search_terms (term, days) {_PAIRS.format(where='true')} ORDER BY term")  # noqa: S608


def pieces(cur: Any, q: str) -> list[tuple[str, str]]:
    """The words of ``q`` as ``(word, where)`` pairs, lower-cased by DuckDB (as ``ILIKE`` and the index are) and split
    where the index splits text (letters and digits, Unicode categories L and N). ``where`` says what an indexed
    word must do with it: ``"equals"`` (a separator on both sides in ``q``), ``"starts"`` (one before it),
    ``"ends"`` (one after it), or ``"contains"``. Empty when ``q`` has no letter or digit."""
    cur.execute("SELECT lower(?)", [q])
    text = cur.fetchone()[0] or ""
    out: dict[str, str] = {}
    start = None
    for i, char in enumerate([*text, " "]):
        if unicodedata.category(char)[0] in "LN" and i < len(text):
            if start is None:
                start = i
            continue
        if start is not None:
            before, after = start > 0, i < len(text)
            where = "equals" if before and after else "starts" if before else "ends" if after else "contains"
            out.setdefault(text[start:i], where)
            start = None
    return list(out.items())


_MATCH = {"equals": "term = ?", "starts": "starts_with(term, ?)", "ends": "ends_with(term, ?)",
          "contains": "contains(term, ?)"}


def candidate_days(cur: Any, words: Sequence[tuple[str, str]]) -> list[date]:
    """Days (newest first) where every word of the query is in some indexed word (one pass over the index)."""
    if not words:
        return []
    matches = " OR ".join(f"({_MATCH[where]})" for _, where in words)
    flags = ", ".join(f"({_MATCH[where]}) AS w{i}" for i, (_, where) in enumerate(words))
    params = [word for word, _ in words]
    cur.execute(f"SELECT {flags}, days FROM search_terms WHERE {matches}", [*params, *params])  # noqa: S608
    found: list[set[date]] = [set() for _ in words]
    for row in cur.fetchall():
        for i in range(len(words)):
            if row[i]:
                found[i].update(row[-1])
    days = set.intersection(*found)
    return sorted(days, reverse=True)


def used_on(cur: Any, words: Sequence[tuple[str, str]], day: date) -> bool:
    """Whether every word of the query is itself an indexed word used on ``day`` (the newest): a cheap sign that
    the words are common, so the newest items are worth searching before the index is read. Longest word first
    (the likeliest to be rare); one lookup by equality each, stopping at the first that is not."""
    for word, _ in sorted(words, key=lambda w: -len(w[0])):
        cur.execute("SELECT list_contains(days, ?) FROM search_terms WHERE term = ?", [day, word])
        row = cur.fetchone()
        if not (row and row[0]):
            return False
    return True


#: The first window of a listing or a search holds about this many generations' worth of time (a few pages).
WINDOW_ITEMS = 200


def probes(cur: Any, *, q: str | None, before: datetime | None,
            selective: bool) -> Iterator[tuple[str, list[Any]]]:
    """Ranges of ``created_at`` to look in, newest first, each a SQL condition with its parameters.

    First a window of time sized from the library's density (:data:`WINDOW_ITEMS` generations' worth), where
    a word found in most items already fills the page without reading the search index. Then, with words in
    ``q``, the older days the search index names (1, then 4 days, then all the other ones); otherwise
    everything older. A ``selective`` filter (a collection, a batch) skips the window.
    """
    words = pieces(cur, q) if q else []
    bound = None  # everything from here on has been looked at
    if not selective:
        cur.execute("SELECT count(*), min(created_at), max(created_at) FROM generations")
        count, oldest, newest = cur.fetchone()
        if not count:
            return
        top = min(before, newest) if before is not None else newest
        if not words or used_on(cur, words, top.astimezone(UTC).date()):
            lo = top - max((newest - oldest) * WINDOW_ITEMS / count, timedelta(seconds=1))
            yield "created_at >= ? AND created_at <= ?", [lo, top]
            if lo <= oldest:
                return
            bound = lo
    if not words:
        yield ("created_at < ?", [bound]) if bound is not None else ("true", [])
        return
    days = candidate_days(cur, words)
    last = min(t for t in (before, bound) if t is not None).astimezone(UTC).date() if (before or bound) else None
    if last is not None:
        days = [d for d in days if d <= last]
    for chunk in (days[:1], days[1:5], days[5:]):
        if not chunk:
            return
        lo = datetime.combine(chunk[-1], time(), tzinfo=UTC)
        hi = datetime.combine(chunk[0], time(), tzinfo=UTC) + timedelta(days=1)
        if bound is not None:
            hi = min(hi, bound)
        yield ("created_at >= ? AND created_at < ? AND list_contains(?::DATE[], timezone('UTC', created_at)::DATE)",
               [lo, hi, chunk])
