"""Generation statuses are named from ``backend/core/vocabulary.py``, not spelt again as string literals.

The scan reads backend/ and frontend/ as Python syntax trees and flags a status word ("queued", "failed", …) only
where it can only mean a generation's status:

- compared with something that names a status (``status``, ``*_status``, ``*statuses``, ``row["status"]``,
  ``.get("status")``);
- passed as ``status=`` or ``from_statuses=`` (or as the default of such a parameter);
- among the parameters of a SQL call (``execute``, ``fetchone``, ``fetchall``, or a ``("INSERT …", [...])`` pair);
- in a tuple, list or set literal made only of status words (a copy of a set such as ``PENDING``).

Other vocabularies that share the words are not flagged: SSE event names (``event == "queued"``,
``backend/outbox/events.py``), attempt outcomes (``outcome=``), error codes (``error_dict("interrupted", …)``),
OpenRouter's video job statuses, and status words inside SQL text (``WHERE status = 'queued'``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from backend.core.vocabulary import Status

ROOT = Path(__file__).resolve().parent.parent
WORDS = frozenset(s.value for s in Status)
VOCABULARY = ROOT / "backend" / "core" / "vocabulary.py"
SQL_CALLS = frozenset({"execute", "executemany", "fetchone", "fetchall"})
STATUS_KEYWORDS = frozenset({"status", "from_statuses"})


def _names_status(node: ast.AST) -> bool:
    """Whether ``node`` is an expression that holds a generation status (or a collection of them)."""
    name = None
    if isinstance(node, ast.Name):
        name = node.id
    elif isinstance(node, ast.Attribute):
        name = node.attr
    elif isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "status"
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return bool(node.args) and isinstance(node.args[0], ast.Constant) and node.args[0].value == "status"
    return name is not None and (name == "status" or name.endswith("_status") or name.endswith("statuses"))


def _words_in(node: ast.AST) -> list[ast.Constant]:
    return [n for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in WORDS]


def _is_sql(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and isinstance(node.value, str)
            and node.value.lstrip().split(" ", 1)[0].upper() in {"SELECT", "INSERT", "UPDATE", "DELETE"})


def spelt_statuses(source: str) -> list[int]:
    """Line numbers where ``source`` spells a generation status as a string literal (see the module docstring)."""
    found: list[ast.Constant] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(_names_status(o) for o in operands):
                for operand in operands:
                    if not _names_status(operand):
                        found += _words_in(operand)
        elif isinstance(node, ast.keyword) and node.arg in STATUS_KEYWORDS:
            found += _words_in(node.value)
        elif isinstance(node, ast.arguments):
            positional = [*node.posonlyargs, *node.args]
            pairs = list(zip(positional[len(positional) - len(node.defaults):], node.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults, strict=True) if d is not None]
            for arg, default in pairs:
                if arg.arg in STATUS_KEYWORDS:
                    found += _words_in(default)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            for arg in node.args[1:]:
                found += _words_in(arg)
        elif isinstance(node, ast.Tuple) and len(node.elts) == 2 and _is_sql(node.elts[0]):
            found += _words_in(node.elts[1])
        if isinstance(node, ast.Tuple | ast.List | ast.Set) and len(node.elts) >= 2 and all(
                isinstance(e, ast.Constant) and e.value in WORDS for e in node.elts):
            found += node.elts
    return sorted({c.lineno for c in found})


@pytest.mark.parametrize("line", [
    'if row["status"] == "queued": pass',
    'if status in ("succeeded", "running"): pass',
    'if record.get("status") != "failed": pass',
    'if parent_status not in ("queued",): pass',
    'await gens.transition(store, gen_id, status="failed")',
    'await gens.transition(store, gen_id, status=Status.FAILED, from_statuses=("queued", "running"))',
    'def claim(store, *, from_statuses=("queued",)): pass',
    'cur.execute("SELECT id FROM generations WHERE status = ?", ["running"])',
    'rows = [("INSERT INTO generations (id, status) VALUES", [gen_id, "running" if now else "queued"])]',
    'ANSWERED = ("succeeded", "interrupted")',
])
def test_the_scan_finds_a_spelt_status(line: str) -> None:
    assert spelt_statuses(line) == [1]


@pytest.mark.parametrize("line", [
    'if row["status"] == Status.QUEUED: pass',
    'if event == "queued": pass',
    'await attempts_db.end(store, generation_id=gen_id, number=n, outcome="cancelled")',
    'err = error_dict("interrupted", "Atelier stopped while this answer was streaming.")',
    'rows = store.fetchall("SELECT id FROM generations WHERE status = \'running\'")',
    'texts = {"failed": "The video failed.", "cancelled": "The video job was cancelled."}',
    'VIDEO_FAILED = {"failed", "cancelled", "expired"}',
    'if row["state"] == "cancelled": pass',
])
def test_the_scan_leaves_other_vocabularies_alone(line: str) -> None:
    assert spelt_statuses(line) == []


def test_no_generation_status_is_spelt_outside_the_vocabulary() -> None:
    offenders = []
    for package in ("backend", "frontend", "desktop"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == VOCABULARY:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{line}" for line in spelt_statuses(path.read_text())]
    assert not offenders, "Name these statuses from backend/core/vocabulary.py (Status, PENDING, TERMINAL, " \
                          "RETRYABLE): " + ", ".join(offenders)
