"""Import upload sessions: an export zip sent in pieces, appended in order to a private file, then imported.

The UI server reads at most 128 MiB per request; a larger export is sent by the Data page in chunks of at most
:data:`CHUNK_MAX_BYTES`, each appended at the offset the session has reached, up to the import limit in total.
A session nobody has added to for :data:`IDLE_SECONDS` expires and its file is removed; files of sessions from
an earlier run are removed when the sessions are created. See docs/data.md ("Imports") and docs/api.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.core.errors import AtelierError, NotFound
from backend.core.files import write_all
from backend.core.sizes import format_size
from backend.db.time import new_id

#: The most one chunk may hold (under the API's request bound and the UI server's).
CHUNK_MAX_BYTES = 32 * 2**20
#: A session with no chunk for this long expires (its file is removed).
IDLE_SECONDS = 30 * 60
_PREFIX = ".session-"


@dataclass
class _Session:
    path: Path
    received: int = 0
    touched: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class UploadSessions:
    """The open upload sessions of this run, each a file ``<imports>/.session-<id>.zip``."""

    def __init__(self, folder: Path, *, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.clock = clock
        self._sessions: dict[str, _Session] = {}
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(_PREFIX + "*"):  # left by an earlier run: nobody can finish them now
            with contextlib.suppress(OSError):
                stale.unlink()

    def sweep(self) -> None:
        """Forget expired sessions and remove their files."""
        now = self.clock()
        for upload_id, session in list(self._sessions.items()):
            if now - session.touched > IDLE_SECONDS and not session.lock.locked():
                self._drop(upload_id)

    def create(self) -> dict[str, int | str]:
        self.sweep()
        upload_id = new_id()
        path = self.folder / f"{_PREFIX}{upload_id}.zip"
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self._sessions[upload_id] = _Session(path=path, touched=self.clock())
        return self.describe(upload_id)

    def describe(self, upload_id: str) -> dict[str, int | str]:
        session = self._get(upload_id)
        return {"id": upload_id, "received": session.received, "chunk_max_bytes": CHUNK_MAX_BYTES,
                "max_bytes": self.max_bytes, "expires_in_seconds": IDLE_SECONDS}

    async def append(self, upload_id: str, offset: int, body: AsyncIterator[bytes], *,
                     length: int | None = None) -> dict[str, int | str]:
        """Append one chunk at ``offset`` (which must be what the session has received so far). A chunk that
        fails part-way (too large, the connection dropped) is cut off again, so it can be sent anew. ``length``
        (the declared size, when known) is checked before anything is read."""
        self.sweep()
        session = self._get(upload_id)
        if length is not None and length > CHUNK_MAX_BYTES:
            raise _chunk_too_large()
        if length is not None and session.received + length > self.max_bytes:
            raise too_large(self.max_bytes)
        if session.lock.locked():
            raise _out_of_order("Another chunk of this upload is being received; send the chunks one by one.",
                                session.received)
        async with session.lock:
            if offset != session.received:
                raise _out_of_order(f"This upload has {session.received} bytes; send the chunk that starts "
                                    "there.", session.received)
            size = 0
            fd = await asyncio.to_thread(os.open, session.path, os.O_WRONLY | os.O_APPEND)
            try:
                async for piece in body:
                    size += len(piece)
                    if size > CHUNK_MAX_BYTES:
                        raise _chunk_too_large()
                    if session.received + size > self.max_bytes:
                        raise too_large(self.max_bytes)
                    await asyncio.to_thread(write_all, fd, piece)
            except BaseException:
                await asyncio.to_thread(os.truncate, session.path, session.received)
                raise
            finally:
                os.close(fd)
            if size == 0:
                raise AtelierError("The chunk is empty.", code="invalid_request", status=422)
            session.received += size
            session.touched = self.clock()
        return self.describe(upload_id)

    def take(self, upload_id: str) -> Path:
        """End the session and hand over its file (the caller imports it and removes it)."""
        session = self._get(upload_id)
        if session.lock.locked():
            raise _out_of_order("A chunk of this upload is still being received.", session.received)
        if session.received == 0:
            raise AtelierError("Nothing was uploaded: send the export zip's chunks first.", code="invalid_import",
                               status=422)
        del self._sessions[upload_id]
        return session.path

    def abort(self, upload_id: str) -> None:
        self._get(upload_id)
        self._drop(upload_id)

    def close(self) -> None:
        """Remove every session's file (the app is stopping)."""
        for upload_id in list(self._sessions):
            self._drop(upload_id)

    def _get(self, upload_id: str) -> _Session:
        session = self._sessions.get(upload_id)
        if session is None:
            raise NotFound(f"No upload '{upload_id[:64]}': it finished, was cancelled or expired. Start again.")
        return session

    def _drop(self, upload_id: str) -> None:
        session = self._sessions.pop(upload_id)
        with contextlib.suppress(OSError):
            session.path.unlink()


def _out_of_order(message: str, received: int) -> AtelierError:
    return AtelierError(message, code="upload_out_of_order", status=409, received=received)


def _chunk_too_large() -> AtelierError:
    return AtelierError(f"A chunk holds at most {format_size(CHUNK_MAX_BYTES)}.", code="payload_too_large",
                        status=413)


def too_large(limit: int) -> AtelierError:
    """The refusal of an import larger than ``limit`` bytes (in one request or in chunks)."""
    return AtelierError(f"The file is larger than the import limit ({format_size(limit)}); import a smaller export.",
                        code="payload_too_large", status=413)
