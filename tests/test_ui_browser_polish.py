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


def in_viewport(page, selector: str) -> bool:
    """Whether the element is entirely inside the visible part of the page."""
    return page.evaluate(
        """(sel) => { const el = document.querySelector(sel); if (!el) return false;
          const r = el.getBoundingClientRect();
          return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight; }""", selector)


def small_page(browser, *, scheme: str = "light", problems: list[str] | None = None):
    context = browser.new_context(viewport={"width": 900, "height": 650}, color_scheme=scheme)
    page = context.new_page()
    if problems is not None:
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
    return page


def test_settings_feedback_stays_in_view(browser, ui: UiStack) -> None:
    page = small_page(browser)
    page.goto(ui.login_url)
    page.goto(ui.url + "/settings")
    page.fill("#api_key", ui.fake.key)
    page.click(".key-form button[type=submit]")
    page.wait_for_load_state("load")
    assert "Key saved and verified" in page.locator(".flashes").inner_text()
    assert in_viewport(page, ".flashes")

    page.locator("#preferences button[type=submit]").scroll_into_view_if_needed()
    page.select_option("#theme", "dark")
    page.click("#preferences button[type=submit]")
    page.wait_for_load_state("load")
    assert "Preferences saved." in page.locator(".flashes").inner_text()
    assert in_viewport(page, ".flashes")
    page.context.close()


def test_key_card_after_a_verified_key(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(ui.login_url)
    page.goto(ui.url + "/settings")
    sign_in = page.locator(".oauth-form button")
    assert "primary" not in (sign_in.get_attribute("class") or "")
    assert "primary" not in (page.locator(".key-form button").get_attribute("class") or "")
    remove = page.locator(".key-remove button").bounding_box()
    below = sign_in.bounding_box()
    assert remove and below and below["y"] - (remove["y"] + remove["height"]) >= 16  # they no longer touch
    # Other settings: words, not raw keys.
    page.click("text=Other settings")
    other = page.locator(".other-settings").inner_text()
    assert "Default max tokens" in other and "default_max_tokens" not in other
    assert "2,048" in other
    page.context.close()


def test_results_scroll_into_view_at_900_by_650(browser, ui: UiStack) -> None:
    ui.set_key()
    page = small_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Short answer please")
    page.click("[data-generate]")
    page.locator("[data-live-result] .prose").wait_for(timeout=20_000)
    wait_for(lambda: page.evaluate("window.scrollY") > 0, timeout=5)
    top = page.evaluate("document.querySelector('[data-output]').getBoundingClientRect().top")
    assert top < 650, "the answer stayed below the fold"
    page.context.close()


def test_error_copy_is_one_sentence_with_codes_in_details_and_a_retry(browser, ui: UiStack) -> None:
    from tests.fakes.behaviours import model_not_found

    ui.set_key()
    ui.fake.enqueue("/chat/completions", model_not_found("acme/nope"))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Hello unknown model")
    page.click("[data-generate]")
    callout = page.locator("[data-live-result] .callout-error")
    callout.wait_for(timeout=20_000)
    title = callout.locator(".callout-title").inner_text()
    assert title.count("does not know") == 1 and "model_not_found" not in title and "HTTP" not in title
    details = callout.locator("details.error-details")
    assert not details.locator("p").is_visible()  # the codes are there, folded away
    details.locator("summary").click()
    assert "model_not_found" in details.inner_text()

    retry = page.locator("[data-live-result] [data-retry]")
    retry.click()  # the fake answers normally this time
    prose = page.locator("[data-live-result] .prose")
    prose.wait_for(timeout=20_000)
    assert prose.inner_text().startswith("Echo: Hello unknown model")
    page.context.close()


def test_rate_limited_card_does_not_claim_openrouter_is_unreachable(browser, ui: UiStack) -> None:
    from tests.fakes.behaviours import rate_limited

    ui.set_key()
    ui.fake.enqueue("/chat/completions", rate_limited(retry_after=3))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Slow down")
    page.click("[data-generate]")
    card = page.locator("[data-live-result] [data-queued]")
    card.wait_for(timeout=20_000)
    text = card.inner_text()
    assert "Waiting to try again" in text and "can be reached" not in text and "reachable" not in text
    last = page.locator("[data-live-result] .result").inner_text()
    assert "by itself" in last and "rate_limited" not in last and "HTTP 429" not in last
    page.locator("[data-live-result] .prose").wait_for(timeout=20_000)
    page.context.close()


def test_offline_banner_and_live_queue_times(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(ui.login_url)
    ui.fake.go_offline()
    page.fill("#prompt", "Sent later")
    page.click("[data-generate]")
    page.locator("[data-live-result] [data-queued]").wait_for(timeout=20_000)
    banner = page.locator("[data-offline-banner]")
    banner.wait_for(state="visible", timeout=15_000)  # follows the status poll
    assert "Your prompts will be sent when OpenRouter can be reached" in banner.inner_text()
    assert "Offline" in page.locator("[data-status-text]").inner_text()

    page.goto(ui.url + "/queue")
    cell = page.locator("[data-next-attempt]").first
    assert "ago" not in cell.inner_text() and cell.inner_text().strip() != "now"
    assert "When OpenRouter can be reached" in cell.inner_text()
    headers = page.locator(".table th")
    assert all(h.inner_text().strip() for h in headers.all())  # no empty header cell

    # Paused: every place that shows the queue says so.
    page.click("text=Pause outbox")
    page.wait_for_load_state("load")
    assert "When you resume" in page.locator("[data-next-attempt]").first.inner_text()
    assert page.locator("[data-queue-paused]").is_visible()
    assert "paused" in page.locator("[data-status-text]").inner_text()
    page.click("text=Resume outbox")
    ui.fake.go_online()
    page.context.close()


def test_relative_times_tick_without_a_reload(browser, ui: UiStack) -> None:
    page = new_page(browser)
    page.goto(ui.login_url)
    page.goto(ui.url + "/queue")
    due = page.evaluate("new Date(Date.now() + 20000).toISOString()")
    page.evaluate("""(due) => { const s = document.createElement('span'); s.dataset.relative = due;
                     s.dataset.relativeDue = 'any moment now'; s.id = 'probe'; document.body.append(s);
                     Atelier.tickRelative(); }""", due)
    first = page.locator("#probe").inner_text()
    assert first.startswith("in 2") or first.startswith("in 1"), first
    wait_for(lambda: page.locator("#probe").inner_text() != first, timeout=4)
    page.evaluate("""() => { document.querySelector('#probe').dataset.relative =
                       new Date(Date.now() - 4000).toISOString(); Atelier.tickRelative(); }""")
    assert page.locator("#probe").inner_text() == "any moment now"  # never "4 s ago" for a due attempt
    page.context.close()
