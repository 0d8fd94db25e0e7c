"""The local API's reference, rendered on the server from the backend's OpenAPI document.

No script and nothing remote: the page works offline under the app's strict CSP, in the UI session (the
backend's own ``/openapi.json`` needs the launch token, which a browser never has).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template

from frontend.web import backend

bp = Blueprint("api_docs", __name__)

_METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document() -> dict[str, Any]:
    """The backend's OpenAPI document (fetched once per launch: it does not change while the app runs)."""
    cached = current_app.extensions.get("atelier_openapi")
    if cached is None:
        client = backend()
        cached = client.request("GET", f"{client.api_url}/openapi.json")
        current_app.extensions["atelier_openapi"] = cached
    return cached


@bp.get("/api-docs")
def index() -> str:
    spec = openapi_document()
    return render_template("api_docs/index.html", spec=spec, groups=_operations(spec),
                           schemas=_schemas(spec), api_url=backend().api_url)


@bp.get("/api-docs/openapi.json")
def document() -> Response:
    return jsonify(openapi_document())


def schema_label(schema: dict[str, Any] | None) -> str:
    """A short, readable type for a JSON schema: ``GenerationCreate``, ``list of string``, ``integer or null``."""
    if not schema:
        return "any"
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " or ".join(dict.fromkeys(schema_label(part) for part in schema[key]))
    if "enum" in schema:
        return "one of " + ", ".join(str(value) for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {schema_label(schema.get('items'))}"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {schema_label(schema['additionalProperties'])}"
    return f"{kind} ({schema['format']})" if schema.get("format") else kind


def _operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Operations grouped by their first tag (or path prefix), in document order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, item in spec.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or [path.removeprefix("/api/v1/").split("/", 1)[0] or "other"])[0]
            body = (operation.get("requestBody") or {}).get("content", {})
            groups.setdefault(tag, []).append({
                "id": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", ""),
                "method": method.upper(),
                "path": path,
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": [
                    {"name": p.get("name"), "in": p.get("in"), "required": p.get("required", False),
                     "type": schema_label(p.get("schema")), "description": p.get("description", "")}
                    for p in operation.get("parameters", [])
                ],
                "body": [{"type": media, "schema": schema_label(value.get("schema"))} for media, value in body.items()],
                "responses": [
                    {"status": status, "description": answer.get("description", ""),
                     "schema": ", ".join(schema_label(v.get("schema")) for v in answer.get("content", {}).values())}
                    for status, answer in sorted(operation.get("responses", {}).items())
                ],
            })
    return [{"name": name, "operations": operations} for name, operations in groups.items()]


def _schemas(spec: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        out.append({
            "name": name,
            "description": schema.get("description", ""),
            "type": schema_label({k: v for k, v in schema.items() if k not in ("properties", "title")}),
            "properties": [
                {"name": prop, "type": schema_label(value), "required": prop in required,
                 "description": value.get("description", "")}
                for prop, value in schema.get("properties", {}).items()
            ],
        })
    return out
