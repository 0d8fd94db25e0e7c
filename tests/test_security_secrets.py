"""The API key never leaks (docs/security.md, "The API key").

A unique sentinel key is set in the real app process, the app is driven through successes, streams and every
kind of upstream error, through every GET route of the API and every UI page, and ``atelier doctor``; then the
sentinel is searched for in every response (body and headers), every page, every file of the data directory
(logs, DuckDB file and WAL, runtime.json, media, backups), every DuckDB table, and what the fake OpenRouter
received. The key file under ``secrets/`` is the only place it may be.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from pathlib import Path

import duckdb
import httpx
import pytest

from tests.conftest import PYTHON, ROOT, subprocess_env
from tests.fakes.behaviours import internal_error, model_not_found, unauthorized
from tests.fakes.openrouter import FakeOpenRouter
from tests.test_robustness_crash import FAST_ENV, AppProcess, wait_for

SENTINEL_BODY = secrets.token_hex(32)
SENTINEL = "sk-or-v1-" + SENTINEL_BODY
# Any of these in the clear is a leak; only the last four characters may be shown.
NEEDLES = [SENTINEL, SENTINEL_BODY[:-4], SENTINEL_BODY[8:40]]


class Recorder:
    """Keeps every response seen (status line, headers, body) for the final search."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def add(self, where: str, response: httpx.Response) -> None:
        response.read()
        head = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.seen.append((where, f"{response.status_code}\n{head}\n\n{response.text}"))

    def hook(self, response: httpx.Response) -> None:
        self.add(str(response.request.url), response)


def _leaks(text: str) -> list[str]:
    return [needle[:12] + "…" for needle in NEEDLES if needle in text]


def _leaks_bytes(data: bytes) -> bool:
    return any(needle.encode() in data for needle in NEEDLES)


def _generate(api: httpx.Client, **body) -> httpx.Response:
    return api.post("/api/v1/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Hi",
                                                  **body})


@pytest.fixture
def sentinel_fake():
    with FakeOpenRouter(keys={SENTINEL: {"label": "sentinel"}}) as fake:
        yield fake


def test_sentinel_key_appears_nowhere(data_dir: Path, sentinel_fake: FakeOpenRouter) -> None:
    fake = sentinel_fake
    recorder = Recorder()
    env = {**FAST_ENV, "ATELIER_OPENROUTER_BASE_URL": fake.base_url, "ATELIER_LOG_LEVEL": "DEBUG"}
    app = AppProcess(data_dir, **env).start()
    try:
        api = app.api
        api.event_hooks["response"] = [recorder.hook]
        r = api.put("/api/v1/credentials", json={"api_key": SENTINEL})
        assert r.status_code == 200 and r.json()["hint"] == "…" + SENTINEL[-4:] and r.json()["verified"]

        # Successes: plain, streamed, an image with a stored file.
        gen = _generate(api, prompt="plain")
        assert gen.status_code == 201, gen.text
        gen_id = gen.json()["id"]
        stream = _generate(api, prompt="streamed", stream=True)
        assert stream.status_code == 200 and "event: done" in stream.text
        image = api.post("/api/v1/generations", json={"kind": "image", "model": "google/gemini-2.5-flash-image",
                                                      "prompt": "a red square"})
        assert image.status_code == 201, image.text
        asset_id = image.json()["assets"][0]["id"]

        # Upstream errors: 500 (retried), an unknown model, a 401, a revoked key, a malformed model id.
        fake.enqueue("/chat/completions", internal_error())
        failed = _generate(api, prompt="after a 500")
        assert failed.status_code == 502
        wait_for(lambda: api.get(f"/api/v1/generations/{failed.json()['generation']['id']}").json()["status"]
                 == "succeeded", what="retry after 500")
        fake.enqueue("/chat/completions", model_not_found("acme/nope"))
        assert _generate(api, model="acme/nope").status_code == 400
        fake.enqueue("/chat/completions", unauthorized())
        assert _generate(api, prompt="unauthorized").json()["error"]["code"] == "invalid_key"
        assert _generate(api, model="not a model").status_code == 422
        fake.enqueue("/chat/completions", internal_error())
        broken_stream = _generate(api, prompt="stream after 500", stream=True)
        assert broken_stream.status_code == 502

        # Every GET route of the schema, with real ids for the path parameters.
        schema = api.get("/openapi.json").json()
        ids = {"gen_id": gen_id, "asset_id": asset_id}  # other ids: unknown ones (404), which is fine here
        for path, item in schema["paths"].items():
            if "get" not in item:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "0" * 32), path)
            assert api.get(url).status_code < 500, url
        for extra in ("/docs", "/api/v1/models?output=image&refresh=true", "/api/v1/usage?group_by=model",
                      f"/api/v1/assets/{asset_id}?thumb=true", f"/api/v1/generations/{gen_id}/events"):
            api.get(extra)

        # The UI, logged in with the session cookie; the key form too.
        with httpx.Client(base_url=app.info["ui_url"], timeout=30, follow_redirects=True,
                          event_hooks={"response": [recorder.hook]}) as ui:
            assert ui.get("/login", params={"token": app.info["token"]}).status_code == 200
            for page in ("/", "/?mode=image", "/?mode=video", "/library", "/library?q=plain", "/queue", "/settings",
                         f"/g/{gen_id}", f"/g/{gen_id}/result", f"/g/{image.json()['id']}", "/ui/status",
                         f"/assets/{asset_id}", f"/g/{gen_id}/events", "/api-docs", "/api-docs/openapi.json"):
                assert ui.get(page).status_code < 500, page
            settings_page = ui.get("/settings").text
            assert SENTINEL[-4:] in settings_page
            saved = ui.post("/settings/key", data={"api_key": SENTINEL})
            assert saved.status_code == 200
            # A revoked key: the UI and API report it without echoing it.
            fake.revoke_key(SENTINEL)
            rejected = ui.post("/settings/key", data={"api_key": SENTINEL})
            assert "OpenRouter rejected this key" in rejected.text
            assert api.put("/api/v1/credentials", json={"api_key": SENTINEL}).json()["error"]["code"] == "invalid_key"
            assert _generate(api, prompt="revoked").json()["error"]["code"] == "invalid_key"
            ui.post("/studio/generate", data={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "via ui"})
            ui.get("/settings")
    finally:
        assert app.stop() == 0

    # atelier doctor, both forms, against the same fake (the key is revoked there now: an error path).
    fake.add_key(SENTINEL)
    doctor_out = []
    for args in (["doctor"], ["doctor", "--json"]):
        done = subprocess.run([PYTHON, "-m", "desktop", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env=subprocess_env(data_dir, **env))
        assert done.stdout.strip(), done.stderr
        doctor_out.append(done.stdout + done.stderr)
    fake.revoke_key(SENTINEL)
    done = subprocess.run([PYTHON, "-m", "desktop", "doctor"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=subprocess_env(data_dir, **env))
    doctor_out.append(done.stdout + done.stderr)
    assert done.returncode == 1  # the key is rejected: doctor says so

    # --- the search -------------------------------------------------------------------------------------------
    for where, text in recorder.seen:
        assert not _leaks(text), f"key in the response of {where}"
    assert len(recorder.seen) > 40
    for text in doctor_out:
        assert not _leaks(text), "key in doctor output"
    assert not _leaks(app.console()), "key on the console"

    key_file = data_dir / "secrets" / "openrouter.key"
    assert SENTINEL in key_file.read_text()  # proves the search below looks for the right thing
    scanned = []
    for path in data_dir.rglob("*"):
        if path.is_file() and path != key_file:
            assert not _leaks_bytes(path.read_bytes()), f"key in {path.relative_to(data_dir)}"
            scanned.append(path.relative_to(data_dir).as_posix())
    assert "atelier.duckdb" in scanned and "logs/atelier.log" in scanned
    assert any(p.startswith("media/") for p in scanned)
    assert (data_dir / "logs" / "atelier.log").stat().st_size > 0
    # DuckDB compresses strings on disk, so a byte search alone is not proof: read every column of every table.
    con = duckdb.connect(str(data_dir / "atelier.duckdb"), read_only=True)
    try:
        tables = con.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
        assert len(tables) >= 5
        for (table,) in tables:
            for row in con.execute(f'SELECT * FROM "{table}"').fetchall():  # noqa: S608 - names from the catalog
                assert not _leaks(json.dumps(row, default=str)), f"key in table {table}"
    finally:
        con.close()

    # What left the machine: the key only ever in the Authorization header of calls to the fake.
    assert fake.requests
    authorized = 0
    for req in fake.requests:
        assert not _leaks(req.full_path), f"key in the URL of {req.path}"
        assert not _leaks_bytes(req.body), f"key in the body of {req.path}"
        for name, value in req.headers.items():
            if name == "authorization":
                authorized += value == f"Bearer {SENTINEL}"
                continue
            assert not _leaks(value), f"key in header {name} of {req.path}"
    assert authorized >= 8
