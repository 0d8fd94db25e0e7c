"""The first ten minutes in a real browser: the paused outbox, feedback that stays in view, error copy, live
queue times, keyboard handling and the result cards (issue 12). Text mode is a conversation: each prompt is a
turn in the thread, and the answer streams into it."""

from __future__ import annotations

import re
import time

import pytest

from tests import ui_fixtures
from tests.ui_fixtures import UiStack, new_page, screenshot, wait_for

browser = ui_fixtures.browser
ui = ui_fixtures.ui

pytestmark = pytest.mark.browser

TURN = "[data-thread] [data-turn]:last-child"
ANSWER = TURN + " [data-answer-text]"


def finished(page, status: str = "succeeded", timeout: float = 20) -> None:
    """Wait until the newest turn is rendered by the server in ``status`` (its tools are there)."""
    page.locator(f"{TURN}[data-status={status}] [data-answer] .turn-tools").wait_for(timeout=timeout * 1000)


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
    assert page.locator("[data-chat] [data-paused-banner]").is_visible()  # on the conversation's composer
    page.fill("#prompt", "Wait for the resume")
    page.click("[data-generate]")
    card = page.locator(f"{TURN} [data-queued][data-paused]")
    card.wait_for(timeout=5_000)
    assert "Paused — will send when you resume" in card.inner_text()
    assert "Starting" not in page.locator(TURN).inner_text()
    wait_for(lambda: page.locator("[data-chat-status]").inner_text() == "Prompt queued; Atelier sends it later.")
    conversation = page.locator("[data-conversations] [data-conv-link]").first
    wait_for(lambda: "Wait for the resume" in conversation.inner_text(), timeout=5)

    # Resume from another tab, as a person would from the Queue page.
    other = page.context.new_page()
    other.goto(ui.url + "/queue")
    other.click("text=Resume outbox")
    other.wait_for_load_state("load")
    other.close()

    started = time.monotonic()
    finished(page, timeout=8)
    assert time.monotonic() - started < 8
    assert page.locator(ANSWER).inner_text().startswith("Echo: Wait for the resume")
    assert page.locator(f"{TURN} [data-queued]").count() == 0
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
    for prompt in ("Short answer please", "And another one"):  # the second turn sits below the fold
        page.fill("#prompt", prompt)
        page.click("[data-generate]")
        wait_for(lambda p=prompt: p in page.locator(TURN).inner_text())
        finished(page)
    wait_for(lambda: page.evaluate("window.scrollY") > 0, timeout=5)
    box = page.evaluate(f"(() => {{ const r = document.querySelector('{TURN}').getBoundingClientRect();"
                        " return {top: r.top, bottom: r.bottom}; })()")
    assert box["top"] < 650, "the answer stayed below the fold"
    wait_for(lambda: page.evaluate(f"document.querySelector('{TURN}').getBoundingClientRect().bottom") <= 651,
             timeout=5)  # the whole (short) answer comes into view, its tools included
    page.context.close()


def test_error_copy_is_one_sentence_with_codes_in_details_and_a_retry(browser, ui: UiStack) -> None:
    from tests.fakes.behaviours import model_not_found

    ui.set_key()
    ui.fake.enqueue("/chat/completions", model_not_found("acme/nope"))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Hello unknown model")
    page.click("[data-generate]")
    callout = page.locator(f"{TURN} .callout-error")
    callout.wait_for(timeout=20_000)
    title = callout.locator(".callout-title").inner_text()
    assert title.count("does not know") == 1 and "model_not_found" not in title and "HTTP" not in title
    details = callout.locator("details.error-details")
    assert not details.locator("p").is_visible()  # the codes are there, folded away
    details.locator("summary").click()
    assert "model_not_found" in details.inner_text()
    assert page.locator("[data-chat-status]").inner_text().startswith("Failed: ")

    retry = page.locator(f"{TURN} [data-retry]")
    retry.click()  # the fake answers normally this time; the conversation reopens on this turn
    page.wait_for_load_state("load")
    finished(page)
    assert page.locator(ANSWER).inner_text().startswith("Echo: Hello unknown model")
    page.context.close()


def test_rate_limited_card_does_not_claim_openrouter_is_unreachable(browser, ui: UiStack) -> None:
    from tests.fakes.behaviours import rate_limited

    ui.set_key()
    ui.fake.enqueue("/chat/completions", rate_limited(retry_after=3))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Slow down")
    page.click("[data-generate]")
    card = page.locator(f"{TURN} [data-queued]")
    card.wait_for(timeout=20_000)
    text = card.inner_text()
    assert "Waiting to try again" in text and "can be reached" not in text and "reachable" not in text
    last = page.locator(f"{TURN} [data-answer]").inner_text()
    assert "by itself" in last and "rate_limited" not in last and "HTTP 429" not in last
    finished(page)  # the turn is followed until the retry answers
    page.context.close()


def test_offline_banner_and_live_queue_times(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(ui.login_url)
    ui.fake.go_offline()
    page.fill("#prompt", "Sent later")
    page.click("[data-generate]")
    page.locator(f"{TURN} [data-queued]").wait_for(timeout=20_000)
    banner = page.locator("[data-chat] [data-offline-banner]")
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


def focused(page) -> str:
    return page.evaluate("""() => { const el = document.activeElement;
      if (!el || el === document.body) return 'BODY';
      return el.tagName + (el.dataset.generate !== undefined ? '[generate]' : '')
        + (el.dataset.stop !== undefined ? '[stop]' : ''); }""")


def test_focus_follows_generate_and_stop_never_body(browser, ui: UiStack) -> None:
    ui.set_key()
    ui.fake.reply_text = " ".join(f"word{i}" for i in range(300))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Talk for a while")
    page.focus("[data-generate]")
    page.keyboard.press("Enter")
    wait_for(lambda: focused(page) == "BUTTON[stop]", timeout=5)  # Send is disabled: focus moves to Stop
    wait_for(lambda: len(page.locator(ANSWER).inner_text()) > 30)
    page.keyboard.press("Enter")  # Stop, from the keyboard
    finished(page, "cancelled")
    assert focused(page) == "BUTTON[generate]"
    # After Stop the cost says what it is instead of "—".
    cost = page.locator(f"{TURN} [data-cost]").inner_text()
    assert cost != "—" and ("Not billed" in cost or "$" in cost)

    # A stream that ends by itself while Stop has focus hands focus back to Send (in a new conversation: a
    # reply to the stopped turn would not go out).
    ui.fake.reply_text = "Short."
    page.click("[data-chat-head] [data-new-conversation]")
    page.wait_for_load_state("load")
    page.fill("#prompt", "A short one")
    page.click("[data-generate]")
    page.locator("[data-stop]").focus()
    wait_for(lambda: "A short one" in page.locator(TURN).inner_text())
    finished(page)
    assert focused(page) == "BUTTON[generate]"

    # Regenerate removes the button that had focus: focus goes to Stop, then back to Send, never to <body>.
    page.locator(f"{TURN} [data-regenerate]").focus()
    page.keyboard.press("Enter")
    wait_for(lambda: focused(page) in ("BUTTON[stop]", "BUTTON[generate]"), timeout=5)
    finished(page)
    assert focused(page) == "BUTTON[generate]"
    page.context.close()


def test_keyboard_skip_link_ctrl_k_and_escape(browser, ui: UiStack) -> None:
    ui.set_key()
    ui.fake.reply_text = " ".join(f"word{i}" for i in range(400))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.keyboard.press("Tab")
    skip = page.locator(".skip-link")
    assert page.evaluate("document.activeElement.classList.contains('skip-link')")
    assert skip.is_visible() and skip.bounding_box()["y"] >= 0
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    page.keyboard.press("Control+k")
    button = page.locator(".picker-button")
    assert button.get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.activeElement.getAttribute('role')") == "combobox"
    page.keyboard.press("Escape")
    assert button.get_attribute("aria-expanded") == "false"
    assert page.evaluate("document.activeElement.classList.contains('picker-button')")

    page.fill("#prompt", "Keep talking")
    page.click("[data-generate]")
    wait_for(lambda: len(page.locator(ANSWER).inner_text()) > 30)
    page.keyboard.press("Escape")  # Esc stops the answer that is streaming
    finished(page, "cancelled")
    assert ui.backend("GET", "/generations", params={"limit": 1})["items"][0]["status"] == "cancelled"
    page.context.close()


def test_model_picker_and_mode_links_are_named_for_assistive_technology(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(ui.login_url)
    # Named by its label and the chosen model (not by the hidden select, nor by the whole list).
    button = page.get_by_role("button", name=re.compile(r"^Model OpenAI: GPT-4o-mini in \$[0-9.]+.M · out"))
    assert button.count() == 1
    assert button.get_attribute("aria-expanded") == "false"
    button.click()
    assert button.get_attribute("aria-expanded") == "true"
    search = page.get_by_role("combobox", name="Search models")
    active = search.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    page.keyboard.press("ArrowDown")
    assert search.get_attribute("aria-activedescendant") != active
    page.keyboard.press("Escape")

    assert page.locator("[role=tab]").count() == 0  # plain links: no tabs without panels
    modes = page.get_by_role("navigation", name="Mode")
    assert modes.locator("[aria-current=page]").inner_text() == "Text"
    page.context.close()


def test_live_region_is_there_at_load_and_status_stays_outside(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(ui.login_url)
    region = page.locator("[aria-live]")
    assert region.count() == 1
    assert page.evaluate("document.querySelector('[aria-live]').hasAttribute('data-thread')")  # the conversation
    assert region.get_attribute("aria-busy") == "false"
    page.evaluate("""() => { window.__texts = 0; window.__busy = [];
      const live = document.querySelector('[aria-live]');
      new MutationObserver((list) => list.forEach((m) => {
        if (m.type === 'attributes') { window.__busy.push(live.getAttribute('aria-busy')); return; }
        m.addedNodes.forEach((n) => { if (n.nodeType === Node.TEXT_NODE
          && n.parentElement && n.parentElement.hasAttribute('data-answer-text')) window.__texts += 1; });
      })).observe(live, {childList: true, subtree: true, attributes: true, attributeFilter: ['aria-busy']});
      window.__region = live; }""")
    page.fill("#prompt", "Stream into the region")
    page.click("[data-generate]")
    finished(page)
    assert page.evaluate("window.__region === document.querySelector('[aria-live]')")  # never replaced
    assert page.evaluate("window.__texts") > 1  # deltas appended as text, not the answer rewritten
    assert page.evaluate("window.__busy") == ["true", "false"]  # busy while streaming, released once in place
    wait_for(lambda: page.locator("[data-chat-status]").inner_text() == "Answer ready.")
    status_inside = "document.querySelector('[aria-live]').contains(document.querySelector('[data-chat-status]'))"
    assert page.evaluate(status_inside) is False
    assert page.locator(f"{TURN} [data-live-status]").count() == 0  # the pending badge went with the stream
    page.context.close()


def test_image_results_sit_in_a_grid_with_a_real_time(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser)
    page.goto(ui.login_url)
    page.goto(ui.url + "/?mode=image")
    for prompt in ("A red square", "A blue circle"):
        page.fill("#prompt", prompt)
        page.click("[data-generate]")
        wait_for(lambda p=prompt: p in page.locator("[data-results] .output").first.inner_text()
                 and page.locator("[data-results] .output").first.locator("img").count() > 0, timeout=20)
    # Both boxes in one go: the page may still be scrolling the new card into view.
    first, second = page.evaluate("""() => Array.from(document.querySelectorAll('[data-results] > .output'))
      .slice(0, 2).map((el) => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y}; })""")
    assert abs(first["y"] - second["y"]) < 2 and first["x"] != second["x"]  # side by side
    assert page.locator("[data-results-status]").inner_text() == "Image ready."  # announced once, politely
    time_text = page.locator("[data-results] .stats").first.inner_text()
    assert "0.0 s" not in time_text
    screenshot(page, "polish-image-grid")
    page.context.close()


def test_undecodable_video_says_so(browser, ui: UiStack) -> None:
    from tests.fakes.behaviours import VideoJob

    ui.set_key()
    ui.fake.enqueue("/videos", VideoJob(seconds=1))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.goto(ui.url + "/?mode=video")
    page.fill("#prompt", "A clip the browser cannot decode")
    page.click("[data-generate]")
    page.locator("[data-results] video").wait_for(state="attached", timeout=30_000)
    error = page.locator("[data-video-error]")
    error.wait_for(timeout=15_000)
    assert "cannot be played" in error.inner_text()
    assert page.locator("[data-results] video track[kind=captions]").count() == 1
    page.context.close()


def test_library_text_tiles_line_up_with_image_tiles(browser, ui: UiStack) -> None:
    ui.set_key()
    ui.backend("POST", "/generations", json={"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Words"})
    ui.backend("POST", "/generations", json={"kind": "image", "model": "google/gemini-2.5-flash-image",
                                             "prompt": "A picture"})
    page = new_page(browser)
    page.goto(ui.login_url)
    page.goto(ui.url + "/library")
    text_tile = page.locator(".lib-tile.lib-text .lib-link").bounding_box()
    image_tile = page.locator(".lib-tile.lib-image .lib-link").bounding_box()
    assert text_tile and image_tile
    assert abs(text_tile["height"] - image_tile["height"]) < 2 and abs(text_tile["y"] - image_tile["y"]) < 2
    assert page.evaluate("getComputedStyle(document.querySelector('.lib-tile.lib-text')).paddingTop") == "0px"
    page.context.close()
