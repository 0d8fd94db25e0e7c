"""Settings → Your data → Import in Chromium: the file goes in chunks through an upload session (so exports larger
than the UI server's 128 MiB request bound can be imported), a refusal is shown, and without JavaScript the plain
form imports in one request. See docs/data.md ("Imports")."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui_fixtures import browser, new_page, screenshot, ui  # noqa: F401

pytestmark = pytest.mark.browser


def _exported(ui, tmp_path: Path) -> tuple[Path, list[str]]:  # noqa: F811
    """Two generations exported as JSONL, then deleted from the library (so importing adds them back)."""
    ids = [ui.backend("POST", "/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                    "prompt": f"Import me, number {n}"})["id"] for n in range(2)]
    made = ui.backend("POST", "/exports", json={"format": "jsonl"})
    with ui.api.client() as client:
        zipped = client.get(f"/api/v1/exports/{made['id']}").content
    for gen_id in ids:
        with ui.api.client() as client:
            assert client.delete(f"/api/v1/generations/{gen_id}").status_code == 204
    path = tmp_path / "export.zip"
    path.write_bytes(zipped)
    return path, ids


def test_an_import_is_sent_in_chunks_and_a_refusal_is_shown(browser, ui, tmp_path: Path) -> None:  # noqa: F811
    ui.set_key()
    saved, ids = _exported(ui, tmp_path)
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    chunks: list[str] = []
    page.on("request", lambda r: chunks.append(r.url) if r.method == "PUT" else None)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/settings")
    # Small chunks here, so that a small export takes several (the page uses what the backend allows: 32 MiB).
    page.evaluate("document.querySelector('[data-import-form]').dataset.chunkBytes = '300'")
    page.set_input_files("#import-file", str(saved))
    page.click("[data-import-form] >> text=Import")
    expect(page.locator("[data-import-status]")).to_contain_text("Added 2 items.")
    assert len(chunks) == -(-saved.stat().st_size // 300) >= 3
    assert [c.split("offset=")[1] for c in chunks] == [str(n * 300) for n in range(len(chunks))]
    assert {i["id"] for i in ui.backend("GET", "/generations")["items"]} == set(ids)

    # Not an export, and larger than the UI server's usual 2 MiB per request, in the backend's own chunk size
    # (32 MiB: one chunk here): the chunk goes through, the engine's reason is shown, nothing is left behind.
    sent: list[int] = []
    page.on("response", lambda r: sent.append(r.status) if r.request.method == "PUT" else None)
    page.evaluate("delete document.querySelector('[data-import-form]').dataset.chunkBytes")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all " * 200_000)
    page.set_input_files("#import-file", str(junk))
    page.click("[data-import-form] >> text=Import")
    expect(page.locator("[data-import-status].is-error")).to_be_visible()
    assert "Added" not in page.locator("[data-import-status]").inner_text()
    assert sent == [200]
    assert not any((ui.api.settings.data_dir / "imports").iterdir())
    assert all("422" in p for p in problems), problems  # the refused finish's response


def test_without_javascript_the_form_imports_in_one_request(browser, ui, tmp_path: Path) -> None:  # noqa: F811
    ui.set_key()
    saved, ids = _exported(ui, tmp_path)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/settings")
    expect(page.locator("noscript")).to_have_count(1)
    page.locator("[data-import-form]").scroll_into_view_if_needed()
    screenshot(page, "settings-import-without-javascript")
    page.set_input_files("#import-file", str(saved))
    page.click("[data-import-form] >> text=Import")
    expect(page.locator(".flash-success")).to_contain_text("Added 2 items.")
    assert {i["id"] for i in ui.backend("GET", "/generations")["items"]} == set(ids)
    context.close()
