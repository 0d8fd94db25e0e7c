""""Use template" in the Studio without JavaScript, over real HTTP (no browser): choosing a template is a GET of
the composer form, and the page comes back with one field per variable, drawn by the server; the plain form
post then renders the template in the engine."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.fakes.openrouter import FakeOpenRouter
from tests.test_policy_enforcement import backend_with_policy, ui_for, write_policy

MODEL = "openai/gpt-4o-mini"


@pytest.fixture
def fake() -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter() as fake:
        yield fake


def _fields(html: str) -> dict[str, str]:
    """The variable inputs the server drew: name → value."""
    box = html.split("data-template-vars>")[1].split("</div>\n</div>")[0]
    return dict(re.findall(r'name="(var__[a-z_]+)" value="([^"]*)"', box))


def test_choosing_a_template_draws_its_fields_on_the_server_and_the_plain_post_renders_it(
        data_dir, fake, tmp_path) -> None:
    with backend_with_policy(data_dir, write_policy(tmp_path, {}), openrouter_base_url=fake.base_url) as api, \
            ui_for(api) as ui, api.client() as c:
        assert c.put("/api/v1/credentials", json={"api_key": fake.key}).status_code == 200
        template = c.post("/api/v1/templates", json={"name": "Haiku", "prompt": "A haiku about {{ subject }} in "
                                                     "{{ season }}"}).json()
        plain = ui.get("/", params={"mode": "text"}).text
        assert "data-use-template-show" in plain and _fields(plain) == {}
        assert 'name="prompt" rows="2" required' in plain

        # "Show its fields": the composer form itself, sent as a GET (every field comes along).
        chosen = ui.get("/", params={"mode": "text", "kind": "text", "model": MODEL, "template_id": template["id"],
                                     "prompt": "", "conversation_id": "", "parent_id": "", "var__season": "May"})
        assert chosen.status_code == 200
        assert _fields(chosen.text) == {"var__subject": "", "var__season": "May"}
        assert re.search(f'<option value="{template["id"]}" data-variables="[a-z,]+" selected>', chosen.text)
        prompt = chosen.text.split('id="prompt"')[1].split(">")[0]
        assert "disabled" in prompt and "required" not in prompt  # the fields replace the prompt

        # The plain form post (no script): the engine renders the template with the fields' values.
        sent = ui.post("/studio/generate", data={"kind": "text", "model": MODEL, "template_id": template["id"],
                                                 "var__subject": "tea", "var__season": "May"},
                       follow_redirects=False)
        assert sent.status_code == 302 and "/g/" in sent.headers["location"]
        record = c.get("/api/v1/generations", params={"limit": 1}).json()["items"][0]
        assert record["prompt"] == "A haiku about tea in May" and record["template_id"] == template["id"]
        assert record["variables"] == {"subject": "tea", "season": "May"}

        # In a conversation, the GET keeps the conversation open (its hidden fields come back as the page's).
        turn = ui.get("/", params={"mode": "text", "template_id": template["id"],
                                   "conversation_id": record["conversation_id"], "parent_id": record["id"]}).text
        assert f'name="parent_id" value="{record["id"]}"' in turn and "A haiku about tea in May" in turn
        # Image mode draws the fields too (an image template).
        image = c.post("/api/v1/templates", json={"name": "Poster", "kind": "image",
                                                  "prompt": "A poster of {{ city }}"}).json()
        page = ui.get("/", params={"mode": "image", "template_id": image["id"]}).text
        assert _fields(page) == {"var__city": ""}
