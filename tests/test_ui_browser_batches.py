"""Batches and Compare in Chromium: a template run over a pasted CSV on two models, watched to 100 % with a pause
and a resume on the way; a compare of three models streaming side by side; a bad CSV header refused by name;
the Queue grouping a batch's items; the Studio's "Use template" form."""

from __future__ import annotations

import zipfile

import pytest
from playwright.sync_api import expect

from tests.fakes.behaviours import Reply
from tests.ui_fixtures import browser, new_page, screenshot, ui, wait_for  # noqa: F401

pytestmark = pytest.mark.browser

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4.5", "mistralai/mistral-small-3.2-24b-instruct"]
CSV = "subject,season\ntea,spring\nrain,autumn\nsnow,winter\nfog,autumn\nsun,summer\n"


def shots(page, name: str) -> None:
    for scheme, size in (("light", (1280, 800)), ("dark", (1280, 800)), ("light", (900, 650)), ("dark", (900, 650))):
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size({"width": size[0], "height": size[1]})
        page.wait_for_timeout(300)  # let the colour transitions finish
        screenshot(page, f"{name}-{scheme}-{size[0]}")


def test_template_batch_from_pasted_csv_reaches_100_with_pause_and_resume(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    for _ in range(10):
        ui.fake.enqueue("/chat/completions", Reply(delay=0.4))
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)

    # Build the template on the Templates page.
    page.click("nav >> text=Templates")
    page.click("text=Create your first template")
    page.fill("#t-name", "Haiku")
    page.fill("#t-prompt", "A haiku about {{ subject }} in {{ season }}.")
    page.click("text=Save template")
    page.wait_for_selector("text=Template “Haiku” saved.")

    page.click("nav >> text=Batches")
    page.wait_for_selector("text=No batches yet")
    page.click("text=Start a batch")
    page.select_option("#template_id", label="Haiku (season, subject)")
    page.fill("#batch-name", "Haiku run")
    page.select_option("#batch-models", MODELS[:2])

    # A header the template does not use is refused by name; nothing is started.
    page.fill("#batch-rows", "subject,weather\ntea,spring\n")
    page.click("[data-batch-review]")
    expect(page.locator("[data-batch-error]")).to_contain_text("'weather'")
    assert ui.backend("GET", "/batches")["items"] == []

    page.fill("#batch-rows", CSV)
    page.click("[data-batch-review]")
    estimate = page.locator("[data-batch-estimate]")
    expect(estimate).to_contain_text("10 generations — 5 rows × 2 models")
    expect(estimate).to_contain_text("About $")
    shots(page, "batch-new")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("[data-batch-start]")
    page.wait_for_selector("[data-batch-live]")
    page.click("[data-batch-pause]")
    expect(page.locator("[data-batch-status]")).to_have_text("Paused")
    batch = ui.backend("GET", "/batches")["items"][0]
    assert batch["status"] == "paused" and batch["total"] == 10
    sent = ui.fake.count("/chat/completions")
    ui.api.outbox_settled(passes=3)
    assert ui.fake.count("/chat/completions") == sent < 10
    shots(page, "batch-paused")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("[data-batch-resume]")
    expect(page.locator("[data-batch-pct]")).to_have_text("100 %", timeout=30_000)
    expect(page.locator("[data-batch-status]")).to_have_text("Finished")
    expect(page.locator("[data-count='succeeded']")).to_have_text("10")
    assert page.locator("table.batch-items tbody tr").count() == 10
    expect(page.locator("table.batch-items")).to_contain_text("Echo: A haiku about tea in spring.")
    shots(page, "batch-finished")

    # Export: variables, model, output and cost per item.
    page.set_viewport_size({"width": 1280, "height": 800})
    with page.expect_download() as download:
        page.click("text=Export CSV")
    with open(download.value.path(), encoding="utf-8") as f:
        text = f.read()
    assert text.splitlines()[0] == "subject,season,model,status,output,cost_usd,prompt_tokens,completion_tokens,id"
    assert len(text.strip().splitlines()) == 11
    # Or as a library export (POST /exports with filter batch_id): a zip with the ten records.
    with page.expect_download() as download:
        page.click("[data-batch-export-zip]")
    with zipfile.ZipFile(download.value.path()) as archive:
        lines = [line for line in archive.read("generations.jsonl").decode().splitlines() if line.strip()]
        batches = archive.read("batches.jsonl").decode().splitlines()
        templates = archive.read("templates.jsonl").decode().splitlines()
    assert len(lines) == 10
    assert len(batches) == 1 and '"Haiku run"' in batches[0]  # the batch and its template come along
    assert len(templates) == 1 and '"Haiku"' in templates[0]
    # The only console line: the refused CSV's 422 answer.
    assert [p for p in problems if "422" not in p] == [], problems


def test_compare_three_models_streams_three_columns(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    ui.fake.reply_text = " ".join(f"word{i}" for i in range(80))
    problems: list[str] = []
    page = new_page(browser, problems=problems)
    page.goto(ui.login_url)
    page.click("text=Compare models")
    page.fill("#compare-prompt", "Explain tides")
    for i, model in enumerate(MODELS):
        page.select_option(f"#compare-model-{i}", model)
    page.click("[data-compare-start]")
    columns = page.locator("[data-compare-column]")
    expect(columns).to_have_count(3)
    # All three stream at once: each shows part of its answer while still generating.
    wait_for(lambda: all(page.locator("[data-compare-text]").nth(i).inner_text() for i in range(3)))
    assert page.locator("[data-compare-status]:text('Generating')").count() >= 2
    shots(page, "compare-streaming")
    for i in range(3):
        expect(page.locator("[data-compare-status]").nth(i)).to_have_text("Done", timeout=30_000)
        expect(page.locator("[data-compare-stats]").nth(i)).to_contain_text("tokens")
    assert [page.locator(".compare-model").nth(i).inner_text() for i in range(3)] == MODELS
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator("[data-compare-keep]").nth(1).click()
    expect(page.locator("[data-compare-keep]").nth(1)).to_have_text("★ Kept")
    favorites = ui.backend("GET", "/generations", params={"favorite": "true"})["items"]
    assert [g["model"] for g in favorites] == [MODELS[1]]
    shots(page, "compare-done")
    assert not problems, problems


def test_queue_groups_batch_items_under_their_batch(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    ui.backend("POST", "/queue/pause")
    ui.backend("POST", "/batches", json={"kind": "text", "models": MODELS[:2], "prompt": "Item {{ n }}",
                                         "rows": [{"n": i} for i in range(60)], "name": "Sixty"})
    ui.backend("POST", "/generations", json={"kind": "text", "model": MODELS[0], "prompt": "On its own",
                                             "defer": True})
    page = new_page(browser)
    page.goto(ui.login_url)
    page.click("nav >> text=Queue")
    group = page.locator("[data-queue-batch]")
    expect(group).to_have_count(1)
    expect(group).to_contain_text("Sixty")
    expect(group).to_contain_text("120 waiting")
    assert page.locator("tr[data-queue-item]").count() == 1  # the single request, not 120 rows
    shots(page, "queue-grouped")


def test_studio_use_template_fills_a_form_per_variable(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    ui.backend("POST", "/templates", json={"name": "Blurb", "kind": "text",
                                           "prompt": "Describe {{ product }} for {{ audience }}."})
    page = new_page(browser)
    page.goto(ui.login_url)
    page.select_option("[data-use-template]", label="Blurb")
    page.wait_for_selector("#var-product")
    page.wait_for_selector("#var-audience")
    page.fill("#var-product", "a teapot")
    page.fill("#var-audience", "tea lovers")
    page.click("[data-generate]")
    wait_for(lambda: ui.backend("GET", "/generations")["items"])
    record = ui.backend("GET", "/generations")["items"][0]
    wait_for(lambda: ui.backend("GET", f"/generations/{record['id']}")["status"] == "succeeded")
    record = ui.backend("GET", f"/generations/{record['id']}")
    assert record["prompt"] == "Describe a teapot for tea lovers."
    assert record["variables"] == {"product": "a teapot", "audience": "tea lovers"}
    assert record["template_id"]
    shots(page, "studio-use-template")


def test_studio_use_template_without_javascript(browser, ui) -> None:  # noqa: F811
    ui.set_key()
    ui.backend("POST", "/templates", json={"name": "Blurb", "kind": "text",
                                           "prompt": "Describe {{ product }} for {{ audience }}."})
    context = browser.new_context(viewport={"width": 1280, "height": 800}, java_script_enabled=False)
    page = context.new_page()
    page.goto(ui.login_url)
    page.select_option("[data-use-template]", label="Blurb")
    assert page.locator("#var-product").count() == 0  # nothing draws them until the form comes back
    page.click("[data-use-template-show]")
    page.wait_for_selector("#var-product")
    assert page.locator("#prompt").is_hidden()
    page.fill("#var-product", "a teapot")
    page.fill("#var-audience", "tea lovers")
    shots(page, "studio-use-template-no-js")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("[data-generate]")
    page.wait_for_url("**/g/**")
    record = ui.backend("GET", "/generations")["items"][0]
    assert record["prompt"] == "Describe a teapot for tea lovers." and record["template_id"]
    context.close()
