"""Settings in Chromium: the spending chart and budget gauge, back up now, restore, export, download, import."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import start_api
from tests.ui_fixtures import FAST, browser, new_page, screenshot, ui, wait_for  # noqa: F401

pytestmark = pytest.mark.browser


def _generate(ui, prompt: str) -> dict:  # noqa: F811
    return ui.backend("POST", "/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": prompt})


def test_spending_chart_and_budget_gauge_in_both_themes(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    for n in range(3):
        _generate(ui, f"spend {n}")
    month_cost = ui.backend("GET", "/usage", params={"group_by": "month"})["rows"][0]["cost_usd"]
    ui.backend("PUT", "/settings", json={"budget_monthly_usd": round(month_cost / 0.9, 8)})  # 90 % spent
    for scheme in ("light", "dark"):
        page = new_page(browser, scheme=scheme)
        page.goto(ui.login_url)
        page.goto(f"{ui.url}/settings")
        chart = page.locator("#usage svg.chart-svg")
        expect(chart).to_be_visible()
        assert chart.locator(".chart-bar").count() == 30
        assert chart.locator(".chart-bar:not(.is-empty)").count() == 1
        expect(page.locator("[data-budget]")).to_contain_text("nearly all of your budget is spent")
        page.goto(f"{ui.url}/")
        expect(page.locator("[data-budget-warning]")).to_contain_text("budget is spent")
        page.goto(f"{ui.url}/settings")
        page.click("#usage >> text=12 months")
        expect(page.locator("#usage svg.chart-svg .chart-bar")).to_have_count(12)
        page.locator("#usage").scroll_into_view_if_needed()
        screenshot(page, f"settings-spending-{scheme}")
        page.context.close()


def test_back_up_export_download_import_and_restore(browser, ui, tmp_path: Path) -> None:  # noqa: F811
    ui.set_key()
    first = _generate(ui, "kept in the backup")
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/settings")

    page.click("text=Back up now")
    expect(page.locator(".flash-success")).to_contain_text("Backed up 1 item.")
    expect(page.locator("#data table tbody tr")).to_have_count(1)

    later = _generate(ui, "made after the backup")
    page.select_option("#export-format", "jsonl")
    page.click("text=Export everything")
    expect(page.locator(".flash-success")).to_contain_text("Exported 2 items as JSONL")
    with page.expect_download() as download:
        page.locator("#data .plain-list a").first.click()
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    lines = zipfile.ZipFile(io.BytesIO(saved.read_bytes())).read("generations.jsonl").splitlines()
    assert {json.loads(line)["id"] for line in lines} == {first["id"], later["id"]}

    # The export goes into another library through its Settings page.
    other = start_api(tmp_path / "other", openrouter_base_url=ui.fake.base_url, **FAST)
    try:
        from desktop.servers import UiServer
        from frontend import backend_of, create_app

        server = UiServer(None)
        app = create_app(api_url=other.url, token=other.token, port_getter=lambda: server.port)
        server.server.app = app
        server.start()
        try:
            page2 = new_page(browser, problems=problems)
            page2.goto(f"{server.url}/login?token={other.token}")
            page2.goto(f"{server.url}/settings")
            page2.set_input_files("#import-file", str(saved))
            page2.click("[data-import-form] >> text=Import")
            expect(page2.locator("[data-import-status]")).to_contain_text("Added 2 items.")
            page2.click("[data-import-form] >> text=Import")
            expect(page2.locator("[data-import-status]")).to_contain_text("Added 0 items; 2 already here were skipped.")
        finally:
            server.stop()
            backend_of(app).close()
    finally:
        other.stop()

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#data >> text=Restore…")
    expect(page.locator(".flash-success")).to_contain_text("Restored 1 item from the backup.")
    ids = [item["id"] for item in ui.backend("GET", "/generations")["items"]]
    assert ids == [first["id"]]
    screenshot(page, "settings-data")
    assert not problems, problems
