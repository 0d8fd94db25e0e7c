"""``/templates``: prompt templates with ``{{ variables }}`` (create, list, read, replace, delete, preview).

Every save checks the syntax (422 ``template_error`` naming the field and line); the answer lists the
``variables`` the template uses. See docs/api.md ("Templates").
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.api.deps import StoreDep
from backend.core.vocabulary import Kind
from backend.db import templates as rows
from backend.services import templates as engine

router = APIRouter(tags=["templates"])

_Tag = Annotated[str, Field(min_length=1, max_length=64)]
_Variables = Annotated[dict[str, Any], Field(max_length=200)]


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Kind = Kind.TEXT
    prompt: str = Field(min_length=1, max_length=engine.MAX_RENDERED)
    system: str | None = Field(default=None, max_length=engine.MAX_RENDERED)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    tags: list[_Tag] = Field(default_factory=list, max_length=32)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a template needs a name")
        return value


class Template(BaseModel):
    id: str
    name: str
    kind: Kind
    prompt: str
    system: str | None
    model: str | None
    params: dict[str, Any]
    tags: list[str]
    variables: list[str]
    created_at: datetime
    updated_at: datetime


class TemplateList(BaseModel):
    items: list[Template]
    next_cursor: str | None


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=engine.MAX_RENDERED)
    system: str | None = Field(default=None, max_length=engine.MAX_RENDERED)
    variables: _Variables = Field(default_factory=dict)
    placeholders: bool = Field(
        default=False, description="Render variables that were not given as [name] instead of refusing (422).")


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variables: _Variables = Field(default_factory=dict)


class Preview(BaseModel):
    prompt: str
    system: str | None
    variables: list[str]


def _out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "variables": engine.variables_of(row["prompt"], row["system"])}


def _fields(body: TemplateIn) -> dict[str, Any]:
    engine.check_syntax(body.prompt, body.system)
    return {"name": body.name, "kind": str(body.kind), "prompt": body.prompt, "system": body.system,
            "model": body.model, "params": body.params, "tags": body.tags}


@router.post("/templates", status_code=201, response_model=Template)
async def create_template(body: TemplateIn, store: StoreDep) -> dict[str, Any]:
    """Save a template; 422 ``template_error`` when its prompt or system prompt is not a valid template."""
    return _out(await rows.insert(store, **_fields(body)))


@router.get("/templates", response_model=TemplateList)
async def list_templates(
    store: StoreDep,
    q: Annotated[str | None, Query(max_length=500)] = None,
    kind: Kind | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Newest first; ``q`` searches the name, prompt and tags."""
    items, next_cursor = await rows.search(store, q=q, kind=kind, limit=limit, cursor=cursor)
    return {"items": [_out(item) for item in items], "next_cursor": next_cursor}


@router.post("/templates/preview", response_model=Preview)
async def preview_template(body: PreviewIn) -> dict[str, Any]:
    """Render an unsaved template with sample values (the editor's live preview)."""
    names = engine.variables_of(body.prompt, body.system)
    values = {name: value for name, value in body.variables.items() if value not in (None, "")}
    while True:
        try:
            rendered = engine.render(body.prompt, body.system, values)
            break
        except engine.MissingVariable as exc:
            name = exc.extra["variable"]
            if not body.placeholders or name in values:
                raise
            values[name] = f"[{name}]"  # only variables the text really needs (a default() stays a default)
    return {"prompt": rendered.prompt, "system": rendered.system, "variables": names}


@router.get("/templates/{template_id}", response_model=Template)
async def get_template(template_id: str, store: StoreDep) -> dict[str, Any]:
    return _out(await rows.get(store, template_id=template_id))


@router.put("/templates/{template_id}", response_model=Template)
async def replace_template(template_id: str, body: TemplateIn, store: StoreDep) -> dict[str, Any]:
    return _out(await rows.replace(store, template_id=template_id, **_fields(body)))


@router.delete("/templates/{template_id}", status_code=204)
async def delete_template(template_id: str, store: StoreDep) -> Response:
    """Delete a template; what was generated from it stays in the library."""
    await rows.delete(store, template_id=template_id)
    return Response(status_code=204)


@router.post("/templates/{template_id}/render", response_model=Preview)
async def render_template(template_id: str, body: RenderIn, store: StoreDep) -> dict[str, Any]:
    """Render a saved template with ``variables`` (422 ``missing_variable`` naming what is missing)."""
    row = await rows.get(store, template_id=template_id)
    rendered = engine.render(row["prompt"], row["system"], body.variables)
    return {"prompt": rendered.prompt, "system": rendered.system,
            "variables": engine.variables_of(row["prompt"], row["system"])}
