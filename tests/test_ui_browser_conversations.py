"""Conversations in a real browser (Chromium) against the real backend and the fake OpenRouter: three turns,
regenerate, edit into a new branch and back (‹ 1/2 ›), Copy with a visible confirmation, Esc stops a stream,
and screenshots at two sizes in light and dark."""

from __future__ import annotations

import json

import pytest

from tests import ui_fixtures
from tests.ui_fixtures import UiStack, new_page, screenshot, wait_for

browser = ui_fixtures.browser
ui = ui_fixtures.ui

pytestmark = pytest.mark.browser

TURNS = "[data-thread] [data-turn]"
LAST_ANSWER = "[data-thread] [data-turn]:last-child [data-answer-text]"


def chats(ui: UiStack) -> list[list[dict]]:
    return [q.json["messages"] for q in ui.fake.requests if q.path == "/chat/completions"]


def pick(page, search: str) -> None:
    """Choose a model with the searchable picker."""
    page.wait_for_timeout(200)  # a picker that just closed hides itself again 120 ms after losing focus
    page.click("[data-chat] .picker-button")
    page.fill("[data-chat] .picker-panel input[type=search]", search)
    page.keyboard.press("Enter")


def shoot(page, name: str) -> None:
    """Screenshots at 1280×800 and 900×650 (the page keeps the last size)."""
    for width, height in ((1280, 800), (900, 650)):
        page.set_viewport_size({"width": width, "height": height})
        screenshot(page, f"{name}-{width}")


def send(page, text: str) -> None:
    before = page.locator(TURNS).count()
    page.fill("#prompt", text)
    page.click("[data-generate]")
    wait_for(lambda: page.locator(TURNS).count() == before + 1)
    page.locator(f"{TURNS}:last-child [data-copy-answer]").wait_for(timeout=30_000)  # finished and rendered


def test_three_turns_regenerate_edit_branches_and_copy(browser, ui: UiStack) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(ui.login_url)

    ui.fake.reply_text = "## Plan\n\n- **one**\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint('hi')\n```"
    send(page, "Make a plan")
    answer = page.locator(LAST_ANSWER)
    assert answer.locator("h2").inner_text() == "Plan" and answer.locator("strong").inner_text() == "one"
    assert answer.locator("table td").count() == 2
    assert page.locator(f"{TURNS}:last-child pre [data-copy]").count() == 1  # code blocks get a Copy button
    ui.fake.reply_text = None
    send(page, "Second question")
    send(page, "Third question")
    assert page.locator(TURNS).count() == 3
    assert chats(ui)[-1][-3:] == [{"role": "user", "content": "Second question"},
                                  {"role": "assistant", "content": "Echo: Second question"},
                                  {"role": "user", "content": "Third question"}]
    assert "conversation=" in page.url and "turn=" in page.url
    side = page.locator("[data-conversations] .conv-list li").first
    wait_for(lambda: "3 turns" in side.inner_text())
    assert "Make a plan" in side.inner_text()

    # Copy the answer: a visible confirmation, and the markdown is on the clipboard.
    copy = page.locator(f"{TURNS}:nth-child(1) [data-copy-answer]")
    copy.click()
    wait_for(lambda: copy.inner_text() == "Copied ✓")
    assert page.evaluate("navigator.clipboard.readText()").startswith("## Plan")
    plain = page.locator(f"{TURNS}:nth-child(1) [data-copy-plain]")
    plain.click()
    wait_for(lambda: plain.inner_text() == "Copied ✓")
    assert page.evaluate("navigator.clipboard.readText()").startswith("Plan\n")
    shoot(page, "conversation-three-turns-light")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Regenerate the third answer: a sibling; the old branch is not sent.
    ui.fake.reply_text = "A different third answer"
    page.click(f"{TURNS}:nth-child(3) [data-regenerate]")
    page.locator(f"{TURNS}:nth-child(3) [data-branch-pos]").wait_for(timeout=30_000)
    assert page.locator(f"{TURNS}:nth-child(3) [data-branch-pos]").inner_text() == "2/2"
    assert page.locator(TURNS).count() == 3
    assert chats(ui)[-1][-1] == {"role": "user", "content": "Third question"}
    assert "Echo: Third question" not in json.dumps(chats(ui)[-1])

    # Edit the second prompt: a new branch from the first answer; what came after it leaves the view.
    ui.fake.reply_text = None
    page.hover(f"{TURNS}:nth-child(2)")
    page.click(f"{TURNS}:nth-child(2) [data-edit]")
    page.fill(f"{TURNS}:nth-child(2) [data-edit-box] textarea", "Second question, edited")
    page.click(f"{TURNS}:nth-child(2) [data-edit-send]")
    page.locator(f"{TURNS}:nth-child(2) [data-branch-pos]").wait_for(timeout=30_000)
    assert page.locator(TURNS).count() == 2
    assert page.locator(f"{TURNS}:nth-child(2) [data-branch-pos]").inner_text() == "2/2"
    assert chats(ui)[-1] == [{"role": "user", "content": "Make a plan"},
                             {"role": "assistant", "content": ui.fake.completions[0].text},
                             {"role": "user", "content": "Second question, edited"}]

    # Back to the first branch: the whole original thread (with its regenerated third answer) is shown.
    page.click(f"{TURNS}:nth-child(2) [data-branch-prev]")
    page.wait_for_load_state("load")
    assert page.locator(TURNS).count() == 3
    assert page.locator(f"{TURNS}:nth-child(2) [data-prompt]").inner_text() == "Second question"
    assert page.locator(f"{TURNS}:nth-child(2) [data-branch-pos]").inner_text() == "1/2"
    assert page.locator(LAST_ANSWER).inner_text() == "A different third answer"
    shoot(page, "conversation-branches-light")
    assert problems == []
    page.context.close()

    dark = new_page(browser, scheme="dark")
    dark.goto(ui.login_url)
    dark.click("[data-conversations] .conv-list a")
    dark.locator(TURNS).first.wait_for()
    shoot(dark, "conversation-dark")
    dark.context.close()


def test_regenerate_and_edit_the_first_turn_stay_in_the_conversation(browser, ui: UiStack) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    send(page, "Name a river")
    send(page, "And a lake?")
    conversation = page.url.split("conversation=")[1].split("&")[0]

    # Regenerate the first answer: a second first turn of the same conversation, browsed with ‹ 2/2 ›.
    ui.fake.reply_text = "The Loire"
    page.click(f"{TURNS}:nth-child(1) [data-regenerate]")
    page.locator(f"{TURNS}:nth-child(1) [data-branch-pos]").wait_for(timeout=30_000)
    assert page.locator(f"{TURNS}:nth-child(1) [data-branch-pos]").inner_text() == "2/2"
    assert page.locator(TURNS).count() == 1
    assert chats(ui)[-1] == [{"role": "user", "content": "Name a river"}]

    # Edit the first prompt: a third first turn, still the same conversation.
    ui.fake.reply_text = None
    page.hover(f"{TURNS}:nth-child(1)")
    page.click(f"{TURNS}:nth-child(1) [data-edit]")
    page.fill(f"{TURNS}:nth-child(1) [data-edit-box] textarea", "Name a mountain")
    page.click(f"{TURNS}:nth-child(1) [data-edit-send]")
    wait_for(lambda: page.locator(f"{TURNS}:nth-child(1) [data-branch-pos]").count() == 1
             and page.locator(f"{TURNS}:nth-child(1) [data-branch-pos]").inner_text() == "3/3")
    assert chats(ui)[-1] == [{"role": "user", "content": "Name a mountain"}]
    listed = ui.backend("GET", "/conversations")["items"]
    assert [c["id"] for c in listed] == [conversation] and listed[0]["turns"] == 4

    # Back to the first version: the whole original thread comes back.
    page.goto(f"{ui.url}/?mode=text&conversation={conversation}")
    page.locator(f"{TURNS}:nth-child(1) [data-branch-prev]").click()
    page.wait_for_load_state("load")
    page.locator(f"{TURNS}:nth-child(1) [data-branch-prev]").click()
    page.wait_for_load_state("load")
    assert page.locator(f"{TURNS}:nth-child(1) [data-branch-pos]").inner_text() == "1/3"
    assert page.locator(TURNS).count() == 2
    assert page.locator(f"{TURNS}:nth-child(2) [data-prompt]").inner_text() == "And a lake?"
    shoot(page, "conversation-first-turn-branches-light")
    page.context.close()
    dark = new_page(browser, scheme="dark")
    dark.goto(ui.login_url)
    dark.goto(f"{ui.url}/?mode=text&conversation={conversation}")
    dark.locator(f"{TURNS}:nth-child(1) [data-branch-pos]").wait_for()
    shoot(dark, "conversation-first-turn-branches-dark")
    dark.context.close()
    assert problems == []


def test_escape_stops_a_stream_and_keeps_the_text(browser, ui: UiStack) -> None:
    ui.set_key()
    ui.fake.reply_text = " ".join(f"word{i}" for i in range(600))
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.fill("#prompt", "Talk for a long time")
    page.click("[data-generate]")
    live = page.locator(LAST_ANSWER)
    wait_for(lambda: len(live.inner_text()) > 40)
    page.keyboard.press("Escape")
    page.locator(f"{TURNS}:last-child [data-regenerate]").wait_for(timeout=30_000)
    kept = page.locator(LAST_ANSWER).inner_text()
    assert kept and ui.fake.reply_text.startswith(kept.strip()) and len(kept) < len(ui.fake.reply_text)
    assert "partial answer is kept" in page.locator(f"{TURNS}:last-child").inner_text()
    record = ui.backend("GET", "/generations", params={"limit": 1})["items"][0]
    assert record["status"] == "cancelled"
    assert problems == []
    page.context.close()


def test_offline_replies_wait_for_the_answer_above(browser, ui: UiStack) -> None:
    ui.set_key()
    page = new_page(browser, scheme="dark")
    page.goto(ui.login_url)
    send(page, "Before the flight")
    ui.fake.go_offline()
    for text in ("On the plane", "Still on the plane"):
        before = page.locator(TURNS).count()
        page.fill("#prompt", text)
        page.click("[data-generate]")
        wait_for(lambda b=before: page.locator(TURNS).count() == b + 1)
        page.locator(f"{TURNS}:last-child [data-turn-waiting]").wait_for(timeout=30_000)
    assert "Atelier will send it when OpenRouter can be reached" in page.locator(f"{TURNS}:nth-child(2)").inner_text()
    assert "Waiting for the answer above" in page.locator(f"{TURNS}:nth-child(3)").inner_text()
    shoot(page, "conversation-offline-dark")
    page.set_viewport_size({"width": 1280, "height": 800})
    ui.fake.go_online()
    page.locator(f"{TURNS}:nth-child(3) [data-copy-answer]").wait_for(timeout=30_000)
    assert page.locator(LAST_ANSWER).inner_text() == "Echo: Still on the plane"
    assert [c.prompt for c in ui.fake.completions] == ["Before the flight", "On the plane", "Still on the plane"]
    page.context.close()


def test_refine_variations_and_animate_from_an_image(browser, ui: UiStack) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.click(".tabs >> text=Image")
    page.fill("#prompt", "A red kite over the sea")
    page.click("[data-generate]")
    page.locator("[data-results] .asset-grid img").first.wait_for(timeout=30_000)
    first = ui.backend("GET", "/generations", params={"limit": 1, "kind": "image"})["items"][0]

    # Refine: the next prompt edits that image (sent as an input image), in a conversation that goes on.
    page.locator("[data-results] [data-refine-link]").first.click()
    page.locator("[data-refine] img").wait_for()
    page.fill("#prompt", "Make the kite blue")
    page.click("[data-generate]")
    page.locator("[data-results] .asset-grid img").first.wait_for(timeout=30_000)
    sent = [r for r in ui.fake.requests if r.path == "/chat/completions"][-1].json["messages"][-1]["content"]
    assert sent[0] == {"type": "text", "text": "Make the kite blue"}
    assert sent[1]["image_url"]["url"].startswith("data:image/png;base64,")
    refined = ui.backend("GET", "/generations", params={"limit": 1, "kind": "image"})["items"][0]
    assert refined["parent_id"] == first["id"] and refined["conversation_id"] == first["id"]
    shoot(page, "image-refine-light")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Variations: four images from the same prompt and model.
    before = ui.fake.count("/chat/completions")
    page.locator("[data-results] [data-variations-link]").first.click()
    assert page.locator("#count").input_value() == "4"
    assert page.locator("#prompt").input_value() == "Make the kite blue"
    page.click("[data-generate]")
    wait_for(lambda: page.locator("[data-results] .asset-grid img").count() == 4, timeout=30)
    assert ui.fake.count("/chat/completions") == before + 4

    # Animate: Video opens with that image as the first frame, shown.
    page.locator("[data-results] a:has-text('Animate')").first.click()
    page.wait_for_url("**mode=video**")
    assert page.locator("[data-refs][data-name=first_frame_id] [data-ref] img").count() == 1
    assert problems == []
    page.context.close()


def test_image_in_a_text_turn_vision_warning_and_continue_from_the_library(browser, ui: UiStack) -> None:
    from tests.fakes.media import solid_png

    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    send(page, "Remember the number 7")
    page.set_input_files("[data-chat] [data-ref-input]", files=[
        {"name": "photo.png", "mimeType": "image/png", "buffer": solid_png(8, 8)}])
    page.locator("[data-chat] [data-ref] img").wait_for()
    # A model that cannot see images says so before anything is sent.
    pick(page, "llama 3.3")
    page.locator("[data-vision-warning]").wait_for(state="visible")
    before = ui.fake.count("/chat/completions")
    page.fill("#prompt", "What is in this photo?")
    page.click("[data-generate]")
    assert ui.fake.count("/chat/completions") == before
    pick(page, "gpt-4o-mini")
    assert page.locator("[data-vision-warning]").is_hidden()
    page.click("[data-generate]")
    page.locator(f"{TURNS}:nth-child(2) [data-copy-answer]").wait_for(timeout=30_000)
    content = chats(ui)[-1][-1]["content"]
    assert content[0] == {"type": "text", "text": "What is in this photo?"}
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert page.locator(f"{TURNS}:nth-child(2) .turn-images img").count() == 1

    # Any turn opened from the Library continues its conversation at that turn.
    first = ui.backend("GET", "/generations", params={"q": "Remember the number"})["items"][0]
    page.goto(f"{ui.url}/g/{first['id']}")
    page.click("[data-continue-conversation]")
    page.wait_for_load_state("load")
    assert page.locator(TURNS).count() == 2  # the branch through that turn, down to its newest answer
    assert page.locator("[data-parent-field]").input_value() == page.locator(
        f"{TURNS}:last-child").get_attribute("data-turn-id")
    assert problems == []
    page.context.close()


def test_rename_search_and_delete_a_conversation(browser, ui: UiStack) -> None:
    ui.set_key()
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    send(page, "Plan a garden")
    page.click("[data-new-conversation]")
    page.wait_for_load_state("load")
    assert page.locator(TURNS).count() == 0
    send(page, "Write a limerick")
    page.locator("[data-title-input]").wait_for()  # the new conversation's head came with its first turn
    page.fill("[data-title-input]", "Limericks")
    page.keyboard.press("Enter")
    side = page.locator("[data-conversations] .conv-title")
    wait_for(lambda: side.first.inner_text() == "Limericks")
    assert [t["title"] for t in ui.backend("GET", "/conversations")["items"]] == ["Limericks", "Plan a garden"]
    page.fill("[data-conv-search]", "garden")
    wait_for(lambda: side.count() == 1 and side.first.inner_text() == "Plan a garden")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-chat] form[data-confirm] button")
    page.wait_for_load_state("load")
    assert [t["title"] for t in ui.backend("GET", "/conversations")["items"]] == ["Plan a garden"]
    assert problems == []
    page.context.close()
