"""Imports sent in chunks (``/imports/uploads``): through the real API into a fresh library, and the session's
rules (order, sizes, the import limit, expiry, cancel) on the sessions themselves. See docs/data.md ("Imports")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from backend.core.errors import AtelierError
from backend.data import uploads as uploads_mod
from backend.data.uploads import UploadSessions
from tests.conftest import start_api
from tests.test_data_exports import _export, fake, source  # noqa: F401
from tests.test_generations import FAST


def _pieces(data: bytes, n: int) -> list[bytes]:
    step = -(-len(data) // n)
    return [data[i:i + step] for i in range(0, len(data), step)]


def test_an_export_sent_in_chunks_is_imported_whole(source, tmp_path: Path, fake) -> None:  # noqa: F811
    running, ids = source
    with running.client() as client:
        zipped = _export(client, "jsonl")
    target = start_api(tmp_path / "b", openrouter_base_url=fake.base_url, **FAST)
    try:
        with target.client() as client:
            session = client.post("/api/v1/imports/uploads").json()
            assert session["received"] == 0 and session["chunk_max_bytes"] == uploads_mod.CHUNK_MAX_BYTES
            url = f"/api/v1/imports/uploads/{session['id']}"
            first, second, third = _pieces(zipped, 3)
            assert client.put(url, params={"offset": 0}, content=first).json()["received"] == len(first)
            # Out of order (the third before the second): refused, with where to go on from.
            late = client.put(url, params={"offset": len(first) + len(second)}, content=third)
            assert late.status_code == 409 and late.json()["error"]["received"] == len(first)
            assert client.put(url, params={"offset": len(first)}, content=second).status_code == 200
            # The same chunk again (a retry after a lost answer) is refused too: nothing is appended twice.
            assert client.put(url, params={"offset": len(first)}, content=second).status_code == 409
            done = client.put(url, params={"offset": len(first) + len(second)}, content=third).json()
            assert done["received"] == len(zipped)
            assert client.post(f"{url}/finish").json() == {"added": 3, "skipped": 0}
            assert {i["id"] for i in client.get("/api/v1/generations").json()["items"]} == set(ids)
            # The session is over and its file gone.
            assert client.post(f"{url}/finish").status_code == 404
            assert client.put(url, params={"offset": 0}, content=b"x").status_code == 404
            assert not any(target.settings.data_dir.joinpath("imports").iterdir())
    finally:
        target.stop()


def test_an_upload_over_the_import_limit_is_refused_and_cancel_removes_it(tmp_path: Path, fake) -> None:  # noqa: F811
    target = start_api(tmp_path / "b", openrouter_base_url=fake.base_url, import_max_bytes=1000, **FAST)
    try:
        with target.client() as client:
            url = "/api/v1/imports/uploads/" + client.post("/api/v1/imports/uploads").json()["id"]
            assert client.put(url, params={"offset": 0}, content=b"a" * 600).status_code == 200
            over = client.put(url, params={"offset": 600}, content=b"b" * 600)
            assert over.status_code == 413 and over.json()["error"]["code"] == "payload_too_large"
            assert client.put(url, params={"offset": 600}, content=b"b" * 400).json()["received"] == 1000
            # Not an export zip: refused at the end like any import, and the upload is over.
            bad = client.post(f"{url}/finish")
            assert bad.status_code == 422
            assert not any(target.settings.data_dir.joinpath("imports").iterdir())
            url = "/api/v1/imports/uploads/" + client.post("/api/v1/imports/uploads").json()["id"]
            client.put(url, params={"offset": 0}, content=b"abc")
            assert any(target.settings.data_dir.joinpath("imports").iterdir())
            assert client.delete(url).status_code == 204
            assert not any(target.settings.data_dir.joinpath("imports").iterdir())
            assert client.delete(url).status_code == 404
    finally:
        target.stop()


async def _body(*pieces: bytes):
    for piece in pieces:
        yield piece


def test_sessions_expire_chunks_are_bounded_and_a_failed_chunk_is_cut_off(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "imports"
    folder.mkdir()
    (folder / ".session-left-by-an-earlier-run.zip").write_bytes(b"old")
    now = [1000.0]
    sessions = UploadSessions(folder, max_bytes=10_000, clock=lambda: now[0])
    assert not any(folder.iterdir())  # an earlier run's sessions cannot be finished: removed

    async def go() -> None:
        monkeypatch.setattr(uploads_mod, "CHUNK_MAX_BYTES", 8)
        upload = sessions.create()["id"]
        assert (await sessions.append(upload, 0, _body(b"abc", b"de")))["received"] == 5
        with pytest.raises(AtelierError) as declared:
            await sessions.append(upload, 5, _body(b"x"), length=9)
        assert declared.value.status == 413
        with pytest.raises(AtelierError) as streamed:  # no length given: counted as it arrives, then cut off
            await sessions.append(upload, 5, _body(b"12345", b"6789"))
        assert streamed.value.status == 413
        assert sessions.describe(upload)["received"] == 5
        path = next(folder.iterdir())
        assert path.read_bytes() == b"abcde"
        # Idle past the limit: the next call finds it gone, file and all.
        now[0] += uploads_mod.IDLE_SECONDS + 1
        with pytest.raises(AtelierError) as gone:
            await sessions.append(upload, 5, _body(b"f"))
        assert gone.value.status == 404
        assert not path.exists()

    asyncio.run(go())
