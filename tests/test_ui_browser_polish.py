"""The first ten minutes in a real browser: the paused outbox, feedback that stays in view, error copy, live
queue times, keyboard handling and the result cards (issue 12)."""

from __future__ import annotations

import time

import pytest

from tests import ui_fixtures
from tests.ui_fixtures import UiStack, new_page, screenshot, wait_for

browser = ui_fixtures.browser
ui = ui_fixtures.ui

pytestmark = pytest.mark.browser


def test_paused_outbox_flow_end_to_end(browser, ui: UiStack) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.click("nav.sidebar >> text=Queue")
    page.click("text=Pause outbox")
    page.wait_for_load_state("load")
    # The sidebar says sending is paused, on every page.
    assert "paused" in page.locator("[data-status-text]").inner_text()

    page.click("nav.sidebar >> text=Studio")
    assert page.locator("[data-paused-banner]").is_visible()
    page.fill("#prompt", "Wait for the resume")
    page.click("[data-generate]")
    card = page.locator("[data-live-result] [data-queued][data-paused]")
    card.wait_for(timeout=5_000)
    assert "Paused — will send when you resume" in card.inner_text()
    assert "Starting" not in page.locator("[data-output]").inner_text()
    recent = page.locator("[data-recent] .gen-link").first
    wait_for(lambda: "Queued" in recent.inner_text(), timeout=5)

    # Resume from another tab, as a person would from the Queue page.
    other = page.context.new_page()
    other.goto(ui.url + "/queue")
    other.click("text=Resume outbox")
    other.wait_for_load_state("load")
    other.close()

    started = time.monotonic()
    prose = page.locator("[data-live-result] .prose")
    prose.wait_for(timeout=8_000)
    assert time.monotonic() - started < 8
    assert prose.inner_text().startswith("Echo: Wait for the resume")
    wait_for(lambda: "Done" in page.locator("[data-recent] .gen-link").first.inner_text(), timeout=5)
    screenshot(page, "polish-paused-resumed")
    assert problems == []
    page.context.close()
