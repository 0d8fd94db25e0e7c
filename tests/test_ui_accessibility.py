"""Accessibility in a real browser: axe-core (WCAG 2.1 A/AA and best practice) over every page state in both
themes, and the Studio by keyboard alone (focus always visible, never lost to <body>). See docs/accessibility.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests import ui_fixtures
from tests.ui_fixtures import UiStack, new_page
from tests.ui_states import Variant, walk

browser = ui_fixtures.browser
ui = ui_fixtures.ui

pytestmark = pytest.mark.browser

AXE = (Path(__file__).resolve().parent / "assets" / "axe-core" / "axe.min.js").read_text(encoding="utf-8")
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BLOCKING = {"critical", "serious"}

RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' ') + ' — ' + (n.failureSummary || '').split('\\n')[1])}));
}"""


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Critical and serious violations on the page as it is now (animations settled)."""
    page.wait_for_timeout(250)  # let the transitions (hover, fades) end before colours are measured
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE)  # the test context bypasses the app's CSP for this one script
    return [v for v in page.evaluate(RUN_AXE, TAGS) if v["impact"] in BLOCKING]


def test_axe_finds_nothing_serious_on_any_page_in_either_theme(browser, ui: UiStack) -> None:
    found: list[str] = []

    def visit(page: Any, name: str, variant: Variant) -> None:
        for violation in axe_violations(page):
            found.append(f"{name} [{variant.scheme}] {violation['id']} ({violation['impact']}): {violation['help']}"
                         + "".join(f"\n    {node}" for node in violation["nodes"]))

    names = walk(ui, browser, [Variant("light"), Variant("dark")], visit)
    assert len(names) >= 24
    assert not found, "\n".join(found)


FOCUS_STATE = """() => {
  const el = document.activeElement;
  if (!el || el === document.body || el === document.documentElement) return {body: true};
  const style = getComputedStyle(el);
  const ring = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const shadow = style.boxShadow && style.boxShadow !== 'none';
  const rect = el.getBoundingClientRect();
  return {body: false, tag: el.tagName,
    label: (el.getAttribute('aria-label') || el.textContent || el.id || '').trim().slice(0, 40),
    visible: ring || shadow, color: style.outlineColor, onScreen: rect.width > 0 && rect.height > 0};
}"""


LAST_TABBABLE = """() => {
  const all = Array.from(document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]'))
    .filter((el) => el.tabIndex >= 0 && !el.disabled && el.getClientRects().length
      && getComputedStyle(el).visibility !== 'hidden');
  window.__last = all[all.length - 1];
}"""


def _luminance(css: str) -> float:
    parts = [float(p) for p in css[css.index("(") + 1:css.index(")")].replace("/", ",").split(",")[:3]]

    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in parts)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_studio_by_keyboard_focus_is_visible_and_never_on_body(browser, ui: UiStack, scheme: str) -> None:
    ui.set_key()
    page = new_page(browser, scheme=scheme)
    page.goto(ui.login_url)
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    seen: list[str] = []
    page.evaluate(LAST_TABBABLE)
    previous_was_last = False
    for _ in range(80):
        page.keyboard.press("Tab")
        state = page.evaluate(FOCUS_STATE)
        if state["body"]:
            # Only past the page's last control may focus leave the page (to the browser): a full cycle.
            assert previous_was_last, f"focus fell to <body> after {seen}"
            break
        assert state["visible"] and state["onScreen"], f"focus on {state} is not visible"
        lighter, darker = sorted((_luminance(state["color"]), _luminance(background)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 3, f"focus ring on {state} has too little contrast"
        seen.append(f"{state['tag']}:{state['label']}")
        previous_was_last = page.evaluate("document.activeElement === window.__last")
    assert any("Send" in s for s in seen) and any(s.startswith("A:Skip") for s in seen)  # the conversation's

    # Send from the keyboard: focus stays on a control through the run and after it.
    page.fill("#prompt", "Keyboard only")
    page.focus("[data-generate]")
    page.keyboard.press("Enter")
    page.locator("[data-thread] [data-turn][data-status=succeeded] [data-answer] .turn-tools").wait_for(timeout=20_000)
    assert not page.evaluate(FOCUS_STATE)["body"]
    assert page.evaluate("document.activeElement.hasAttribute('data-generate')")  # back on Send
    page.context.close()


def _contrast(first: str, second: str) -> float:
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_primary_button_text_contrast_across_its_gradient(browser, ui: UiStack, scheme: str) -> None:
    """axe cannot measure text on a gradient: every colour stop of the primary button is checked here."""
    import re

    page = new_page(browser, scheme=scheme)
    page.goto(ui.login_url)
    style = page.evaluate("""() => { const b = document.querySelector('.button.primary');
      const s = getComputedStyle(b); return {image: s.backgroundImage, color: s.color}; }""")
    stops = re.findall(r"rgba?\([^)]*\)", style["image"])
    assert len(stops) >= 2, style
    for stop in stops:
        assert _contrast(style["color"], stop) >= 4.5, f"{style['color']} on {stop} in {scheme}"
    page.context.close()
