"""The Studio in a real browser (Chromium) against the real backend and the fake OpenRouter: first run,
streamed text, the outbox when offline, Stop. (Conversations: tests/test_ui_browser_conversations.py.)"""

from __future__ import annotations

import pytest

from tests import ui_fixtures
from tests.ui_fixtures import UiStack, new_page, screenshot, wait_for

# The shared fixtures: Chromium, and the fake OpenRouter + backend + UI stack.
browser = ui_fixtures.browser
ui = ui_fixtures.ui

pytestmark = pytest.mark.browser

# Record every length the answer goes through, so a test can tell "streamed" from "appeared at once".
WATCH_LIVE_TEXT = """() => {
  window.__lengths = [];
  const thread = document.querySelector('[data-thread]');
  new MutationObserver(() => {
    const texts = thread.querySelectorAll('[data-answer-text]');
    if (texts.length) window.__lengths.push(texts[texts.length - 1].textContent.length);
  }).observe(thread, {childList: true, characterData: true, subtree: true});
}"""
TURN = "[data-thread] [data-turn]:last-child"
ANSWER = TURN + " [data-answer-text]"
DONE = TURN + " [data-regenerate]"  # the turn ended and was rendered by the server


def test_first_run_key_then_streamed_markdown_with_cost(browser, ui: UiStack) -> None:
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    assert "Connect your OpenRouter key" in page.content()

    page.click("text=Add your key")
    page.fill("#api_key", ui.fake.key)
    page.click("text=Save key")
    page.wait_for_load_state("load")
    assert "Key saved and verified with OpenRouter." in page.content()
    assert ui.fake.key not in page.content()  # only the last four characters are ever shown

    page.click("nav.sidebar >> text=Studio")
    assert "Connect your OpenRouter key" not in page.content()
    prompt = "Write **three** short lines about tea, coffee and water for a menu card"
    page.fill("#prompt", prompt)
    page.evaluate(WATCH_LIVE_TEXT)
    page.click("[data-generate]")

    page.locator(DONE).wait_for(timeout=30_000)
    prose = page.locator(ANSWER)
    final = prose.inner_text()
    assert final.startswith("Echo: Write three short lines")
    assert prose.locator("strong").inner_text() == "three"  # rendered markdown, not raw asterisks
    lengths = page.evaluate("window.__lengths")
    streamed = [n for n in lengths if 0 < n < len(final)]
    assert streamed, f"the text never showed an intermediate state: {lengths}"

    record = ui.backend("GET", "/generations", params={"limit": 1})["items"][0]
    assert record["status"] == "succeeded" and record["usage"]["cost_usd"]
    assert "$" in page.locator(TURN + " .turn-meta").inner_text()
    recent = page.locator("[data-conversations] .conv-title").first
    recent.wait_for()
    wait_for(lambda: recent.inner_text().startswith("Write **three**"))  # the conversation list followed along
    screenshot(page, "studio-text-result-light")
    assert problems == []
    page.context.close()


def test_offline_generation_is_queued_and_arrives_by_itself(browser, ui: UiStack) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, scheme="dark", problems=problems)
    page.goto(ui.login_url)
    ui.fake.go_offline()

    page.fill("#prompt", "Say hello to the outbox")
    page.click("[data-generate]")
    queued = page.locator(TURN + " [data-turn-waiting]")
    queued.wait_for(timeout=30_000)
    assert "Atelier will send it when OpenRouter can be reached" in queued.inner_text()
    page.locator("[data-status-pill]:has-text('Offline')").wait_for(timeout=30_000)
    assert page.locator("[data-outbox-count]").inner_text() == "1"
    screenshot(page, "studio-text-queued-dark")

    ui.fake.go_online()
    page.locator(DONE).wait_for(timeout=30_000)  # no click, no reload: the page follows the queued generation
    assert page.locator(ANSWER).inner_text() == "Echo: Say hello to the outbox"
    page.locator("[data-status-pill]:has-text('Online')").wait_for(timeout=30_000)
    wait_for(lambda: page.locator("[data-outbox-count]").is_hidden())
    assert ui.fake.count("/chat/completions", status=200) == 1
    assert problems == []
    page.context.close()


def test_stop_during_a_stream_keeps_the_partial_text(browser, ui: UiStack) -> None:
    ui.set_key()
    ui.fake.reply_text = " ".join(f"word{i}" for i in range(400))
    page = new_page(browser)
    page.goto(ui.login_url)
    page.fill("#prompt", "Talk for a long time")
    page.click("[data-generate]")
    live = page.locator(ANSWER)
    wait_for(lambda: len(live.inner_text()) > 40)
    page.click("[data-stop]")

    page.locator(DONE).wait_for(timeout=30_000)
    kept = page.locator(ANSWER).inner_text()
    assert kept and ui.fake.reply_text.startswith(kept.strip())
    assert len(kept) < len(ui.fake.reply_text)
    assert "partial answer is kept" in page.locator(TURN).inner_text()
    record = ui.backend("GET", "/generations", params={"limit": 1})["items"][0]
    assert record["status"] == "cancelled" and record["output_text"].startswith(kept.strip()[:20])
    # OpenRouter's stats give the real cost of the stopped stream a little later; the turn shows it by itself.
    cost = page.locator(TURN + " [data-cost]")
    wait_for(lambda: "no cost reported" not in cost.inner_text(), timeout=60)
    record = ui.backend("GET", f"/generations/{record['id']}")
    assert record["usage"]["cost_usd"] > 0 and cost.inner_text().startswith("$")
    page.context.close()


def test_first_run_offline_still_takes_a_prompt(browser, data_dir) -> None:
    """Installed and opened without a network: the key is kept unverified, the Studio has no model list yet but
    still accepts the prompt for the default model, and the answer arrives once OpenRouter is reachable."""
    from desktop.servers import UiServer
    from frontend import backend_of, create_app
    from tests.conftest import start_api
    from tests.fakes.openrouter import FakeOpenRouter

    with FakeOpenRouter(token_delay=0.01) as fake:
        fake.go_offline()
        api = start_api(data_dir, openrouter_base_url=fake.base_url, **ui_fixtures.FAST)
        server = UiServer(None)
        app = create_app(api_url=api.url, token=api.token, port_getter=lambda: server.port)
        server.server.app = app
        server.start()
        try:
            problems: list[str] = []
            page = new_page(browser, problems=problems)
            page.goto(f"{server.url}/login?token={api.token}")
            page.goto(f"{server.url}/settings")
            page.fill("#api_key", fake.key)
            page.click(".key-form button[type=submit]")
            page.locator("text=checked with OpenRouter once you are online").wait_for(timeout=30_000)

            page.goto(f"{server.url}/")
            hint = page.locator("[data-no-model-list]")
            hint.wait_for()
            assert "openai/gpt-4o-mini" in hint.inner_text()
            page.fill("#prompt", "Written on a plane")
            page.click("[data-generate]")
            page.locator(TURN + " [data-turn-waiting]").wait_for(timeout=30_000)

            fake.go_online()
            page.locator(DONE).wait_for(timeout=30_000)
            assert page.locator(ANSWER).inner_text() == "Echo: Written on a plane"
            assert [c.prompt for c in fake.completions] == ["Written on a plane"]
            assert problems == []
            page.context.close()
        finally:
            server.stop()
            backend_of(app).close()
            api.stop()


def test_errors_show_the_engines_words_and_the_settings_link_it_names(browser, ui: UiStack) -> None:
    """No key yet: the text stream and the image composer both show the engine's message in the one error
    callout, with the Settings link because the error says its fix is there — and nothing added by the page."""
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.fill("#prompt", "Hello without a key")
    page.click("[data-generate]")
    callout = page.locator("[data-thread] .callout-error")
    callout.wait_for(timeout=30_000)
    assert callout.locator(".callout-title").inner_text().startswith("No OpenRouter key is set.")
    link = callout.locator("[data-error-action=settings]")
    assert link.get_attribute("href") == "/settings"
    assert callout.locator("p").count() == 1  # the link is the only line added to the engine's message

    page.goto(f"{ui.url}/?mode=image")
    page.fill("#prompt", "A red square without a key")
    page.click("[data-generate]")
    card = page.locator("[data-results] .callout-error")
    card.wait_for(timeout=30_000)
    assert card.locator(".callout-title").inner_text().startswith("No OpenRouter key is set.")
    card.locator("[data-error-action=settings]").click()
    page.wait_for_url(f"{ui.url}/settings")
    assert page.locator("#api_key").is_visible()
    assert not [p for p in problems if "400" not in p]  # the refused request itself is the only console line
    page.context.close()


def test_generation_page_follows_a_queued_generation_to_its_end(browser, ui: UiStack) -> None:
    """The generation page of a queued request shows the answer once it arrives, without a click."""
    ui.set_key()
    ui.fake.go_offline()
    queued = ui.backend("POST", "/generations", json={"kind": "text", "model": "openai/gpt-4o-mini",
                                                      "prompt": "Waiting on the detail page", "defer": True})
    assert queued["status"] == "queued"
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.goto(f"{ui.url}/g/{queued['id']}")
    assert page.locator("[data-live-events]").count() == 1
    ui.fake.go_online()
    prose = page.locator(".prose")
    prose.wait_for(timeout=30_000)  # the page reloaded itself when the generation ended
    assert prose.inner_text() == "Echo: Waiting on the detail page"
    assert page.locator("[data-live-events]").count() == 0
    assert problems == []
    page.context.close()
