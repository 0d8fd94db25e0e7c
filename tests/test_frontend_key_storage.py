"""Where the key is, said truthfully (SECURITY.md 11, 33), and nothing of it shown but its last four characters
(SECURITY.md 12, 13) — not even through the label OpenRouter gives a key it created (``sk-or-v1-abc...xyz``)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import httpx
import pytest

from backend.keys.credentials import safe_label
from frontend import backend_of, create_app
from tests.conftest import RunningApi, start_api
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_keystore import DictKeyring

SENTINEL = "sk-or-v1-" + secrets.token_hex(32)
#: What OpenRouter calls such a key: its first characters. The part after ``sk-or-v1-`` must never show.
PREFIX_LABEL = SENTINEL[:24] + "..." + SENTINEL[-3:]
SHOWN_PREFIX = SENTINEL[9:24]

FILE = "a private file"
KEYCHAIN = "your system keychain"
BACKENDS = {"file": (FILE, KEYCHAIN), f"{DictKeyring.__module__}:DictKeyring": (KEYCHAIN, FILE)}


@contextmanager
def signed_in(api: RunningApi) -> Iterator[tuple[httpx.Client, int]]:
    """A signed-in client of a UI wired to ``api``, and the UI's port."""
    from desktop.servers import UiServer

    server = UiServer(None)
    app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
    server.server.app = app
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/login", params={"token": api.token}, follow_redirects=False).status_code == 302
            yield client, server.port
    finally:
        server.stop()
        backend_of(app).close()


@pytest.fixture(autouse=True)
def _empty_keychain() -> Iterator[None]:
    DictKeyring.storage.clear()
    yield
    DictKeyring.storage.clear()


# -- where the key is --------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_every_page_that_says_where_the_key_is_tells_the_truth(data_dir: Path, backend: str) -> None:
    here, not_here = BACKENDS[backend]
    with FakeOpenRouter() as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url, keyring_backend=backend)
        try:
            with signed_in(api) as (ui, port):
                # Before a key exists: where a pasted (or signed-in) key will go.
                with api.client() as c:
                    saves_to = c.get("/api/v1/credentials").json()["saves_to"]
                assert saves_to == ("file" if backend == "file" else "keyring")
                banner = ui.get("/").text
                assert "Connect your OpenRouter key" in banner and f"It is kept in {here}" in banner
                hint = ui.get("/settings").text
                assert f"Atelier keeps it in {here}" in hint
                waiting = ui.post("/settings/oauth/start").text
                assert f"a key of its own, kept in {here}" in waiting
                for page in (banner, hint, waiting):
                    assert not_here not in page

                # Signing in stores the key; the browser tab OpenRouter returns to says where it went.
                auth_url = ui.post("/settings/oauth/start", headers={
                    "X-Requested-With": "fetch", "Accept": "application/json"}).json()["auth_url"]
                callback = httpx.get(auth_url).headers["location"]
                assert callback.startswith(f"http://localhost:{port}/oauth/callback/")
                done = httpx.get(callback)
                assert done.status_code == 200 and f"The key was saved in {here}" in done.text
                assert not_here not in done.text

                settings = ui.get("/settings").text
                assert f'<dd data-key-place>{here}' in settings
                assert f"Atelier keeps it in {here}" in settings
                assert not_here not in settings
            stored_in_file = (data_dir / "secrets" / "openrouter.key").exists()
            assert stored_in_file == (here == FILE)
            assert bool(DictKeyring.storage) == (here == KEYCHAIN)
        finally:
            api.stop()


# -- the label ---------------------------------------------------------------------------------------------


def test_a_label_showing_part_of_the_key_is_dropped() -> None:
    key = "sk-or-v1-" + "0123456789abcdef" * 3 + "0123456789abWXYZ"
    assert safe_label(f"{key[:12]}...{key[-3:]}", key) is None  # OpenRouter's own label for the key
    assert safe_label("sk-or-v1-9f2...", None) is None  # shaped like a key: dropped even without the key
    assert safe_label("345...", key) is None  # a piece of the hidden part
    assert safe_label("Work laptop", key) == "Work laptop"
    assert safe_label("ends in WXYZ", key) == "ends in WXYZ"  # the last four may show
    assert safe_label("  ", key) is None and safe_label(None, key) is None


def _leaks(text: str) -> bool:
    return SHOWN_PREFIX in text or PREFIX_LABEL in text


def _scan_database(data_dir: Path) -> list[str]:
    """Every string of every table, and the raw bytes of the file: where the label would show."""
    path = data_dir / "atelier.duckdb"
    found = []
    if SHOWN_PREFIX.encode() in path.read_bytes():
        found.append("file bytes")
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
        for (table,) in tables:
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608 - names from the catalog
                if _leaks(json.dumps(row, default=str)):
                    found.append(table)
    finally:
        con.close()
    return found


def test_a_key_whose_label_is_its_prefix_shows_only_its_last_four(data_dir: Path) -> None:
    with FakeOpenRouter(keys={SENTINEL: {"label": PREFIX_LABEL}}) as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with signed_in(api) as (ui, _):
                saved = ui.post("/settings/key", data={"api_key": SENTINEL}, follow_redirects=True)
                assert "Key saved and verified with OpenRouter." in saved.text
                settings = ui.get("/settings").text
                assert SENTINEL[-4:] in settings and not _leaks(settings)
                assert "<dt>Label</dt>" not in settings
            with api.client() as c:
                credentials = c.get("/api/v1/credentials")
            assert credentials.json()["label"] is None and credentials.json()["hint"] == "…" + SENTINEL[-4:]
            assert not _leaks(credentials.text)
        finally:
            api.stop()
        assert _scan_database(data_dir) == []

        # Started again: the key's details are read from OpenRouter anew, and still kept without the label.
        api = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with api.client() as c:
                assert not _leaks(c.get("/api/v1/credentials").text)
        finally:
            api.stop()
        assert _scan_database(data_dir) == []


def test_a_label_kept_by_an_earlier_version_is_scrubbed(data_dir: Path) -> None:
    with FakeOpenRouter(keys={SENTINEL: {"label": "Studio laptop"}}) as fake:
        api = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with api.client() as c:
                assert c.put("/api/v1/credentials", json={"api_key": SENTINEL}).json()["label"] == "Studio laptop"
            with signed_in(api) as (ui, _):
                assert "<dt>Label</dt><dd>Studio laptop</dd>" in ui.get("/settings").text  # a chosen label stays
        finally:
            api.stop()
        con = duckdb.connect(str(data_dir / "atelier.duckdb"))
        try:
            info = json.loads(con.execute("SELECT value FROM meta WHERE key = 'key_info'").fetchone()[0])
            old = json.dumps({**info, "label": PREFIX_LABEL})
            con.execute("UPDATE meta SET value = ? WHERE key = 'key_info'", [old])
        finally:
            con.close()
        fake.go_offline()  # nothing fresh from OpenRouter: what was stored is all there is
        api = start_api(data_dir, openrouter_base_url=fake.base_url)
        try:
            with api.client() as c:
                credentials = c.get("/api/v1/credentials")
            assert credentials.json()["label"] is None and not _leaks(credentials.text)
        finally:
            api.stop()
        con = duckdb.connect(str(data_dir / "atelier.duckdb"), read_only=True)
        try:
            stored = con.execute("SELECT value FROM meta WHERE key = 'key_info'").fetchone()[0]
        finally:
            con.close()
        assert not _leaks(stored)
