"""The branch the Studio shows for a conversation (``frontend/views/conversations.branch``)."""

from __future__ import annotations

from frontend.views.conversations import branch, effective_system


def t(ident: str, parent: str | None, system: str | None = None) -> dict:
    return {"id": ident, "parent_id": parent, "system": system}


#       a
#     / | \
#    b  e  f        (b, e, f: answers to a — regenerations or edits)
#    |
#    c
#   / \
#  d   g
TURNS = [t("a", None, "terse"), t("b", "a"), t("c", "b"), t("d", "c"), t("e", "a"), t("f", "a", "verbose"),
         t("g", "c")]


def ids(items: list[dict]) -> list[str]:
    return [i["turn"]["id"] for i in items]


def test_the_leaf_shows_its_ancestors() -> None:
    items = branch(TURNS, None, "g")
    assert ids(items) == ["a", "b", "c", "g"]
    assert [(i["index"], len(i["siblings"])) for i in items] == [(1, 1), (1, 3), (1, 1), (2, 2)]
    assert effective_system(items) == "terse"


def test_a_turn_in_the_middle_continues_down_its_newest_answers() -> None:
    assert ids(branch(TURNS, "b", "f")) == ["a", "b", "c", "g"]
    assert ids(branch(TURNS, "d", "f")) == ["a", "b", "c", "d"]


def test_a_sibling_branch_and_its_own_system_prompt() -> None:
    items = branch(TURNS, "f", "g")
    assert ids(items) == ["a", "f"] and items[1]["siblings"] == ["b", "e", "f"] and items[1]["index"] == 3
    assert effective_system(items) == "verbose"


def test_unknown_or_deleted_turns() -> None:
    assert branch(TURNS, "zzz", "g") == branch(TURNS, None, "g")
    assert branch([], None, None) == []
    orphan = [t("x", "deleted"), t("y", "x")]  # its parent was deleted: it is a root now
    assert ids(branch(orphan, None, "y")) == ["x", "y"]


def test_first_turns_are_siblings_of_each_other() -> None:
    turns = [t("a", None), t("b", "a"), t("a2", None), t("c", "a2")]  # a2: the first turn regenerated
    items = branch(turns, None, "c")
    assert ids(items) == ["a2", "c"] and items[0]["siblings"] == ["a", "a2"] and items[0]["index"] == 2
    items = branch(turns, "a", "c")
    assert ids(items) == ["a", "b"] and items[0]["index"] == 1
