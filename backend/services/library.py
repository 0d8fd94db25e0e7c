"""Changes to many library items at once: bulk actions and deletion (one transaction each).

Deleting generations, one or many, goes through :meth:`Library.delete`: anything still being sent is cancelled,
one transaction removes the rows (assets, attempts, collection memberships, the generations), then the media
files no asset refers to any more are removed — unless a kept backup refers to them. See docs/data.md.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from backend.core.errors import AtelierError
from backend.data.backups import media_in_backups
from backend.db import collections
from backend.db import generations as gens
from backend.db.generations import existing_ids
from backend.db.store import Store
from backend.media import MediaStore

if TYPE_CHECKING:
    from backend.outbox.worker import Outbox

BulkAction = Literal["favorite", "unfavorite", "tag", "untag", "delete", "add_to_collection",
                     "remove_from_collection"]
NEEDS_VALUE = {"tag", "untag", "add_to_collection", "remove_from_collection"}


class Library:
    """Bulk changes to generations, and their deletion with their files."""

    def __init__(self, *, store: Store, media: MediaStore, outbox: Outbox, backups_dir: Path) -> None:
        self.store = store
        self.media = media
        self.outbox = outbox
        self.backups_dir = backups_dir

    async def apply(self, ids: list[str], action: BulkAction, value: str | None = None) -> dict[str, Any]:
        """Apply ``action`` to every generation in ``ids`` in one transaction: all of it or none of it.

        Returns ``{"done": n, "missing": [ids that do not exist]}``.
        """
        if action in NEEDS_VALUE and not (value and value.strip()):
            what = "collection id" if "collection" in action else "tag"
            raise AtelierError(f"The {action.replace('_', ' ')} action needs a {what} in \"value\".",
                               code="invalid_request", status=422)
        value = value.strip() if value else value
        if action == "delete":
            missing = await self.delete(ids)
            return {"done": len(set(ids)) - len(missing), "missing": missing}

        def write(cur: Any) -> list[str]:
            if action in ("add_to_collection", "remove_from_collection"):
                if not collections.exists(cur, collection_id=value):
                    raise collections.not_found(value)
                change = collections.add_items if action == "add_to_collection" else collections.remove_items
                return change(cur, collection_id=value, generation_ids=ids)
            existing = existing_ids(cur, ids)
            if existing:
                statement, params = _update(action, value)
                cur.execute(f"UPDATE generations SET {statement}, updated_at = now() "  # noqa: S608
                            "WHERE list_contains(?::VARCHAR[], id)", [*params, existing])
            return [gen_id for gen_id in ids if gen_id not in set(existing)]

        missing = await self.store.transaction(write)
        return {"done": len(set(ids)) - len(set(missing)), "missing": missing}

    async def delete(self, ids: list[str]) -> list[str]:
        """Delete generations with their rows and unshared files; returns the ids that did not exist.

        Anything still being sent is cancelled first, so no answer lands on a deleted row. A file that a kept
        backup refers to stays until that backup is removed, so restoring it brings the media back too.
        """
        present = await self.store.read(lambda cur: existing_ids(cur, ids))
        for gen_id in present:
            await self.outbox.cancel(gen_id)
        if present:
            orphans = await gens.delete(self.store, present)
            kept = await asyncio.to_thread(media_in_backups, self.backups_dir) if orphans else frozenset()
            for sha in orphans:
                if sha not in kept:
                    await asyncio.to_thread(self.media.delete, sha)
        return [gen_id for gen_id in dict.fromkeys(ids) if gen_id not in set(present)]


def _update(action: str, value: str | None) -> tuple[str, list[Any]]:
    if action == "favorite":
        return "favorite = true", []
    if action == "unfavorite":
        return "favorite = false", []
    if action == "tag":
        return "tags = CASE WHEN list_contains(tags, ?) THEN tags ELSE list_append(tags, ?) END", [value, value]
    if action == "untag":
        return "tags = list_filter(tags, lambda t: t != ?)", [value]
    raise AssertionError(action)
