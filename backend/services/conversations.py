"""Where a new turn goes in a conversation (``conversation_id`` / ``parent_id`` on ``POST /generations``),
and deleting a whole conversation. See docs/api.md ("Conversations") and docs/outbox.md ("Conversations")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.core.errors import AtelierError, NotFound
from backend.core.vocabulary import Kind
from backend.db import conversations as convs
from backend.db import generations as gens
from backend.db.store import Store
from backend.db.time import new_id

if TYPE_CHECKING:
    from backend.services.library import Library


@dataclass(frozen=True)
class Placement:
    """The conversation and parent of a turn about to be inserted."""

    conversation_id: str | None = None
    parent_id: str | None = None
    new_conversation: bool = False
    #: The parent's status when the turn was admitted (a turn whose parent has not finished waits).
    parent_status: str | None = None

    @property
    def waits(self) -> bool:
        """The turn does not go out at once: its parent has not finished (it waits), or failed (the outbox
        fails it with ``parent_failed`` on its next pass)."""
        return self.parent_status in (*gens.WAITING_PARENT, *gens.PARENT_FAILED)


def _invalid(message: str) -> AtelierError:
    return AtelierError(message, code="invalid_request", status=422)


async def _sibling(store: Store, sibling_of: str, conversation_id: str | None) -> Placement:
    """Where a branch beside ``sibling_of`` goes: its conversation, after its parent. A first turn's sibling is
    another first turn of the same conversation (docs/api.md, "Conversations")."""
    row = await store.fetchone("SELECT id, kind, conversation_id, parent_id FROM generations WHERE id = ?",
                               [sibling_of])
    if row is None:
        raise NotFound(f"No generation with id '{sibling_of[:64]}' to branch beside.")
    if row["kind"] == Kind.VIDEO:
        raise _invalid("A video is not a turn of a conversation.")
    if conversation_id is not None and conversation_id != row["conversation_id"]:
        raise _invalid("sibling_of belongs to another conversation than conversation_id.")
    if row["conversation_id"] is None:  # an image on its own: its new version is on its own too
        return Placement()
    return Placement(conversation_id=row["conversation_id"], parent_id=row["parent_id"])


async def place(store: Store, *, kind: str, conversation_id: str | None, parent_id: str | None,
                sibling_of: str | None = None) -> Placement:
    """Neither id → a new conversation (text; an image stays on its own); ``parent_id`` alone → that turn's
    conversation; ``conversation_id`` alone → after its latest turn; a parent from another conversation → 422.
    A parent that is not in a conversation yet (an image being refined) becomes the root of a new one.
    ``sibling_of`` (regenerate, edit) → beside that turn: its conversation, after its parent."""
    if kind == Kind.VIDEO:
        if conversation_id or parent_id or sibling_of:
            raise _invalid("Videos do not take part in conversations; start the video from the image instead.")
        return Placement()
    if sibling_of is not None:
        if parent_id is not None:
            raise _invalid("Give either parent_id or sibling_of, not both: a new branch answers after the same "
                           "turn as its sibling.")
        sibling = await _sibling(store, sibling_of, conversation_id)
        if sibling.parent_id is None:  # a first turn (or an image on its own): no parent to wait for
            if sibling.conversation_id is None and kind == Kind.TEXT:
                return Placement(conversation_id=new_id(), new_conversation=True)
            return sibling
        conversation_id, parent_id = sibling.conversation_id, sibling.parent_id
    if parent_id is None and conversation_id is None:
        return Placement(conversation_id=new_id(), new_conversation=True) if kind == Kind.TEXT else Placement()
    if parent_id is None:
        assert conversation_id is not None
        if not await convs.exists(store, conversation_id):
            raise convs.not_found(conversation_id)
        parent_id = await convs.latest_turn(store, conversation_id)
        if parent_id is None:  # every turn was deleted: this one starts it again
            return Placement(conversation_id=conversation_id)
    row = await store.fetchone("SELECT id, kind, status, conversation_id FROM generations WHERE id = ?", [parent_id])
    if row is None:
        raise NotFound(f"No generation with id '{parent_id[:64]}' to answer after.")
    if row["kind"] == Kind.VIDEO:
        raise _invalid("A turn cannot follow a video.")
    if row["conversation_id"] is None:
        if conversation_id is not None:
            raise _invalid("parent_id belongs to another conversation than conversation_id.")
        # The parent starts a conversation (its id doubles as the conversation's, as for migrated turns).
        return Placement(conversation_id=row["id"], parent_id=parent_id, new_conversation=True,
                         parent_status=row["status"])
    if conversation_id is not None and conversation_id != row["conversation_id"]:
        raise _invalid("parent_id belongs to another conversation than conversation_id.")
    return Placement(conversation_id=row["conversation_id"], parent_id=parent_id, parent_status=row["status"])


async def delete_conversation(store: Store, *, library: Library, conversation_id: str) -> int:
    """Delete every turn (through the library's deletion, files included), then the conversation."""
    ids = await convs.turn_ids(store, conversation_id)
    if ids:
        await library.delete(ids)
    await convs.delete(store, conversation_id)
    return len(ids)
