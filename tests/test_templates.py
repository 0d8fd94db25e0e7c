"""Prompt templates: CRUD, validation, variable detection and sandboxed rendering, through the real API."""

from __future__ import annotations

import pytest

from backend.services import templates as engine

TEMPLATE = {
    "name": "Product blurb",
    "kind": "text",
    "prompt": "Write a {{ tone | default('warm') }} description of {{ product }}.\n"
              "{% if audience %}For {{ audience }}.{% endif %}",
    "system": "You write for {{ brand }}.",
    "model": "openai/gpt-4o-mini",
    "params": {"temperature": 0.7},
    "tags": ["shop"],
}


def test_create_read_list_replace_delete(api) -> None:
    with api.client() as c:
        created = c.post("/api/v1/templates", json=TEMPLATE)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["variables"] == ["audience", "brand", "product", "tone"]
        assert body["params"] == {"temperature": 0.7} and body["tags"] == ["shop"]
        tid = body["id"]

        assert c.get(f"/api/v1/templates/{tid}").json() == body
        listed = c.get("/api/v1/templates").json()
        assert [item["id"] for item in listed["items"]] == [tid] and listed["next_cursor"] is None

        changed = c.put(f"/api/v1/templates/{tid}", json={**TEMPLATE, "prompt": "Haiku about {{ topic }}",
                                                           "system": None, "name": "Haiku"})
        assert changed.status_code == 200
        assert changed.json()["variables"] == ["topic"]
        assert changed.json()["name"] == "Haiku"
        assert changed.json()["created_at"] == body["created_at"]
        assert changed.json()["updated_at"] >= body["updated_at"]

        assert c.delete(f"/api/v1/templates/{tid}").status_code == 204
        for method in ("get", "delete"):
            missing = getattr(c, method)(f"/api/v1/templates/{tid}")
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert c.put(f"/api/v1/templates/{tid}", json=TEMPLATE).status_code == 404


def test_list_pages_with_a_cursor_and_searches(api) -> None:
    with api.client() as c:
        ids = [c.post("/api/v1/templates", json={**TEMPLATE, "name": f"T{i}", "tags": [f"t{i}"]}).json()["id"]
               for i in range(5)]
        first = c.get("/api/v1/templates", params={"limit": 2}).json()
        second = c.get("/api/v1/templates", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        third = c.get("/api/v1/templates", params={"limit": 2, "cursor": second["next_cursor"]}).json()
        seen = [item["id"] for page in (first, second, third) for item in page["items"]]
        assert seen == list(reversed(ids)) and third["next_cursor"] is None
        assert [item["name"] for item in c.get("/api/v1/templates", params={"q": "t3"}).json()["items"]] == ["T3"]
        assert c.get("/api/v1/templates", params={"kind": "image"}).json()["items"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "  "}, "name"),
        ({"prompt": ""}, "prompt"),
        ({"kind": "audio"}, "kind"),
        ({"surprise": 1}, "surprise"),
        ({"tags": ["x" * 65]}, "tags"),
    ],
)
def test_invalid_templates_are_refused_by_field(api, change: dict, field: str) -> None:
    with api.client() as c:
        r = c.post("/api/v1/templates", json={**TEMPLATE, **change})
        assert r.status_code == 422
        assert field in r.text
        assert c.get("/api/v1/templates").json()["items"] == []


@pytest.mark.parametrize(
    ("prompt", "system", "where"),
    [("Hello {{ name", None, "prompt"), ("Fine", "{% if x %}never closed", "system"),
     ("{% for %}", None, "prompt")],
)
def test_syntax_errors_name_the_field_and_line(api, prompt: str, system: str | None, where: str) -> None:
    with api.client() as c:
        r = c.post("/api/v1/templates", json={**TEMPLATE, "prompt": prompt, "system": system})
        assert r.status_code == 422
        error = r.json()["error"]
        assert error["code"] == "template_error"
        assert error["field"] == where and error["line"] >= 1
        assert f"line {error['line']}" in error["message"]


def test_render_fills_variables_and_names_a_missing_one(api) -> None:
    with api.client() as c:
        tid = c.post("/api/v1/templates", json=TEMPLATE).json()["id"]
        ok = c.post(f"/api/v1/templates/{tid}/render",
                    json={"variables": {"product": "a teapot", "brand": "Kiln", "audience": "tea lovers"}})
        assert ok.status_code == 200
        assert ok.json()["prompt"] == "Write a warm description of a teapot.\nFor tea lovers."
        assert ok.json()["system"] == "You write for Kiln."

        missing = c.post(f"/api/v1/templates/{tid}/render", json={"variables": {"brand": "Kiln"}})
        assert missing.status_code == 422
        assert missing.json()["error"]["code"] == "missing_variable"
        assert missing.json()["error"]["variable"] == "product"
        assert '"product"' in missing.json()["error"]["message"]


@pytest.mark.parametrize(
    "prompt",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ lipsum.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ self._TemplateReference__context }}",
        "{{ x.__dict__ }}",
        "{{ 1 / 0 }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxx{% endfor %}{% endfor %}",
        "{{ 'a' * 300000 }}",
    ],
)
def test_sandbox_escapes_and_runaway_templates_are_template_errors(api, prompt: str) -> None:
    with api.client() as c:
        r = c.post("/api/v1/templates/preview", json={"prompt": prompt, "variables": {"x": "y"}})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "template_error"
        assert "uid=" not in r.text


def test_preview_of_an_unsaved_template(api) -> None:
    with api.client() as c:
        r = c.post("/api/v1/templates/preview",
                   json={"prompt": "{{ n }} × {{ n }} = {{ n * n }}", "variables": {"n": 7}})
        assert r.json() == {"prompt": "7 × 7 = 49", "system": None, "variables": ["n"]}


def test_variables_are_found_in_prompt_and_system_only_once() -> None:
    names = engine.variables_of("{{ a }} {{ a|upper }} {% for x in items %}{{ x }}{% endfor %}", "{{ b }}")
    assert names == ["a", "b", "items"]
