"""The Library in Chromium: select tiles, tag them, add them to a collection, filter by it, export it as Markdown;
collections created, renamed and deleted from the sidebar; a title renamed; screenshots in both themes."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.ui_fixtures import browser, new_page, screenshot, ui  # noqa: F401

pytestmark = pytest.mark.browser


def _generate(ui, prompt: str, **extra) -> dict:  # noqa: F811
    return ui.backend("POST", "/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": prompt,
                                                    **extra})


def test_select_tag_collect_filter_and_export(browser, ui, tmp_path: Path) -> None:  # noqa: F811
    ui.set_key()
    made = [_generate(ui, f"Poem number {n} about the sea", tags=["draft"] if n == 0 else []) for n in range(5)]
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/library")

    # A collection from the sidebar.
    page.fill(".coll-new input[name=name]", "Picks")
    page.click(".coll-new button")
    expect(page.locator(".flash-success")).to_contain_text("Collection “Picks” created.")
    page.click(".coll-list >> text=All items")

    tiles = page.locator(".lib-tile")
    expect(tiles).to_have_count(5)
    # Click the first tile's box, shift-click the third: three selected.
    tiles.nth(0).locator("input.lib-select").click()
    tiles.nth(2).locator("input.lib-select").click(modifiers=["Shift"])
    expect(page.locator("[data-selected-count]")).to_have_text("3 selected")
    chosen = [tiles.nth(i).get_attribute("data-generation-id") for i in range(3)]

    # Tag them, with the tags in use offered as the user types.
    page.fill("[data-tag-input]", "d")
    expect(page.locator("#tag-suggestions option[value=draft]")).to_have_count(1)
    page.fill("[data-tag-input]", "hero")
    page.click("[data-bulk-form] button[value=tag]")
    expect(page.locator(".flash-success")).to_contain_text("Tagged 3 items “hero”.")
    expect(page.locator(".lib-tile .tag-chip", has_text="hero")).to_have_count(3)

    # The selection was cleared by the page load; select them again and add them to the collection.
    tiles.nth(0).locator("input.lib-select").click()
    tiles.nth(2).locator("input.lib-select").click(modifiers=["Shift"])
    page.select_option("[data-bulk-form] select[name=collection_id]", label="Picks")
    page.click("[data-bulk-form] button[value=add_to_collection]")
    expect(page.locator(".flash-success")).to_contain_text("Added 3 items to the collection.")

    # Filter by it.
    page.click(".coll-list >> text=Picks")
    expect(tiles).to_have_count(3)
    assert sorted(tiles.nth(i).get_attribute("data-generation-id") for i in range(3)) == sorted(chosen)
    expect(page.locator(".coll-list a.active")).to_contain_text("3")

    # Export it as Markdown: select the whole page, download the zip.
    page.check("[data-select-page]")
    expect(page.locator("[data-selected-count]")).to_have_text("3 selected")
    page.select_option("[data-bulk-form] select[name=format]", "markdown")
    with page.expect_download() as download:
        page.click("[data-bulk-form] button[value=export]")
    saved = tmp_path / "picks.zip"
    download.value.save_as(saved)
    names = zipfile.ZipFile(io.BytesIO(saved.read_bytes())).namelist()
    assert "index.md" in names and len([n for n in names if n.endswith(".md") and n != "index.md"]) == 3

    # Delete asks first and names the count; dismissing it keeps everything.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("[data-bulk-form] button[value=delete]")
    assert asked and "Delete 3 selected" in asked[0]
    expect(tiles).to_have_count(3)

    for scheme in ("light", "dark"):
        for width, height in ((1280, 800), (900, 650)):
            context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
            shot = context.new_page()
            shot.goto(ui.login_url)
            shot.goto(f"{ui.url}/library")
            shot.locator(".lib-tile input.lib-select").nth(1).click()
            shot.locator(".lib-tile input.lib-select").nth(3).click(modifiers=["Shift"])
            screenshot(shot, f"library-bulk-{scheme}-{width}x{height}")
            context.close()

    # Rename the collection, then delete it: its items stay in the library.
    page.goto(f"{ui.url}/library")
    page.click(".coll-list >> text=Picks")
    page.click(".coll-manage summary")
    page.fill(".coll-manage input[name=name]", "Best of")
    page.click(".coll-manage button:has-text(\"Rename\")")
    expect(page.locator(".coll-list a.active")).to_contain_text("Best of")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".coll-manage summary")
    page.click(".coll-manage button.danger")
    expect(page.locator(".flash-success")).to_contain_text("Collection deleted")
    expect(page.locator(".lib-tile")).to_have_count(5)

    # Rename a title from the detail page; the Library shows it.
    page.goto(f"{ui.url}/g/{made[4]['id']}")
    page.fill(".title-form input[name=title]", "The sea, at last")
    page.click(".title-form >> text=Rename")
    expect(page.locator("h1")).to_have_text("The sea, at last")
    page.goto(f"{ui.url}/library")
    expect(page.locator(".lib-tile .lib-prompt", has_text="The sea, at last")).to_have_count(1)
    assert problems == []


def test_rename_a_title_in_place_on_its_tile(browser, ui) -> None:  # noqa: F811
    """The tile's Rename (or F2) edits the title in place: Enter saves through the UI server into the backend,
    Esc cancels, a refusal is shown inline; focus returns to the tile each time."""
    ui.set_key()
    first = _generate(ui, "A lighthouse keeper's diary")
    second = _generate(ui, "Notes on tidal pools")
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/library")
    tile = page.locator(f".lib-tile[data-generation-id='{first['id']}']")
    title = tile.locator("[data-tile-title]")

    # Rename by keyboard: Tab from the tile's link reaches Rename; Enter opens the editor, Enter saves.
    tile.locator(".lib-link").focus()
    page.keyboard.press("Tab")
    expect(tile.locator("[data-rename]")).to_be_focused()
    page.keyboard.press("Enter")
    editor = tile.locator("[data-rename-form] input[name=title]")
    expect(editor).to_be_focused()
    editor.fill("The keeper's log")
    page.keyboard.press("Enter")
    expect(tile.locator("[data-rename-form]")).to_have_count(0)
    expect(title).to_have_text("The keeper's log")
    expect(tile.locator(".lib-link")).to_be_focused()
    assert ui.backend("GET", f"/generations/{first['id']}")["title"] == "The keeper's log"

    # F2 on the focused tile, then Esc: nothing changes and focus is back on the tile.
    tile.locator(".lib-link").focus()
    page.keyboard.press("F2")
    expect(editor).to_be_focused()
    expect(editor).to_have_value("The keeper's log")
    editor.fill("Not this one")
    page.keyboard.press("Escape")
    expect(tile.locator("[data-rename-form]")).to_have_count(0)
    expect(title).to_have_text("The keeper's log")
    expect(tile.locator(".lib-link")).to_be_focused()
    assert ui.backend("GET", f"/generations/{first['id']}")["title"] == "The keeper's log"

    # A title the backend refuses (too long): the reason is shown in the tile, the editor stays open.
    other = page.locator(f".lib-tile[data-generation-id='{second['id']}']")
    other.locator("[data-rename]").click()
    other.locator("[data-rename-form] input[name=title]").fill("x" * 301)
    other.locator("[data-rename-form] button[type=submit]").click()
    error = other.locator("[data-rename-form] [role=alert]")
    expect(error).to_contain_text("300 characters")
    expect(other.locator("[data-rename-form] input[name=title]")).to_be_focused()
    expect(other.locator("[data-rename-form] input[name=title]")).to_have_attribute("aria-invalid", "true")
    assert ui.backend("GET", f"/generations/{second['id']}")["title"] is None
    for scheme in ("light", "dark"):
        for width, height in ((1280, 800), (900, 650)):
            context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
            shot = context.new_page()
            shot.goto(ui.login_url)
            shot.goto(f"{ui.url}/library")
            shot_tile = shot.locator(f".lib-tile[data-generation-id='{second['id']}']")
            shot_tile.locator(".lib-link").focus()
            shot.keyboard.press("F2")
            shot.locator("[data-rename-form] input[name=title]").fill("x" * 301)
            shot.keyboard.press("Enter")
            expect(shot.locator("[data-rename-form] [role=alert]")).to_be_visible()
            screenshot(shot, f"library-rename-error-{scheme}-{width}x{height}")
            context.close()
    # Emptying the title goes back to showing the prompt.
    other.locator("[data-rename-form] input[name=title]").fill("")
    page.keyboard.press("Enter")
    expect(other.locator("[data-tile-title]")).to_have_text("Notes on tidal pools")
    assert all("422" in p for p in problems), problems  # the refused rename's response


def test_without_javascript_rename_goes_to_the_detail_page_form(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    made = _generate(ui, "Moss on old stones")
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/library")
    page.locator(f".lib-tile[data-generation-id='{made['id']}'] [data-rename]").click()
    assert page.url.endswith(f"/g/{made['id']}#rename")
    page.fill("#rename", "Moss, slowly")
    page.click(".title-form >> text=Rename")
    expect(page.locator("h1")).to_have_text("Moss, slowly")
    assert ui.backend("GET", f"/generations/{made['id']}")["title"] == "Moss, slowly"
    context.close()
