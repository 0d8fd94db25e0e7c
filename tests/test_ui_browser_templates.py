"""The Templates page in Chromium: write a template, watch its variables and preview, save, duplicate, delete."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.ui_fixtures import browser, new_page, screenshot, ui, wait_for  # noqa: F401

pytestmark = pytest.mark.browser


def test_build_a_template_with_live_preview_and_inline_errors(browser, ui) -> None:  # noqa: F811
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.click("nav >> text=Templates")
    page.wait_for_selector("text=No templates yet")
    page.click("text=Create your first template")

    page.fill("#t-name", "Product blurb")
    page.fill("#t-prompt", "Describe {{ product }} for {{ audience | default('everyone') }}.")
    page.wait_for_selector("#sample-product")
    page.wait_for_selector("#sample-audience")
    output = page.locator("[data-preview-output]")
    expect(output).to_contain_text("[product]")
    page.fill("#sample-product", "a teapot")
    expect(output).to_contain_text("Describe a teapot for everyone.")

    # A syntax error is shown inline with its line, and the preview keeps working after it is fixed.
    page.fill("#t-prompt", "Line one\nDescribe {{ product ")
    page.wait_for_selector("[data-preview-error]:not([hidden])")
    assert "line 2" in page.inner_text("[data-preview-error]")
    page.fill("#t-prompt", "Describe {{ product }}.")
    page.wait_for_selector("[data-preview-error]", state="hidden")
    page.wait_for_selector("#sample-audience", state="detached")
    for scheme, size in (("light", (1280, 800)), ("dark", (900, 650))):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": size[0], "height": size[1]})
        screenshot(page, f"templates-editor-{scheme}-{size[0]}")

    page.click("text=Save template")
    page.wait_for_selector("text=Template “Product blurb” saved.")
    saved = ui.backend("GET", "/templates")["items"]
    assert [(item["name"], item["variables"]) for item in saved] == [("Product blurb", ["product"])]

    # Saving a broken template keeps what was typed and says why.
    page.fill("#t-prompt", "{% if product %}never closed")
    page.click("text=Save template")
    page.wait_for_selector("[data-template-error]")
    assert "syntax error" in page.inner_text("[data-template-error]")
    assert page.input_value("#t-prompt") == "{% if product %}never closed"
    assert ui.backend("GET", "/templates")["items"][0]["prompt"] == "Describe {{ product }}."

    page.click("nav >> text=Templates")
    page.click("text=Duplicate")
    page.wait_for_selector("text=Made a copy of “Product blurb”.")
    page.click("nav >> text=Templates")
    assert page.locator(".template-card").count() == 2
    screenshot(page, "templates-list")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(".template-card", has_text="(copy)").locator("text=Delete").click()
    page.wait_for_selector("text=Template deleted.")
    assert [item["name"] for item in ui.backend("GET", "/templates")["items"]] == ["Product blurb"]
    # The one refused save answers 422 (the form comes back with the message); nothing else went wrong.
    assert [p for p in problems if "status of 422" not in p] == [], problems
    assert len(problems) <= 1, problems
