"""Prompt templates: Jinja2 syntax, rendered in a sandbox, every failure a 422 that names the problem.

``{{ subject }}``, filters and ``{% if %}`` work as in Jinja2. Rendering uses ``SandboxedEnvironment`` (no
access to Python internals such as ``''.__class__``) and ``StrictUndefined`` (a variable that is not given is an
error that names it, never an empty string). Output is capped at the prompt limit. See docs/api.md
("Templates").
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from backend.core.errors import AtelierError

# The longest prompt a generation accepts; a template may not render past it.
MAX_RENDERED = 200_000
_UNDEFINED_NAME = re.compile(r"^'([^']+)' is undefined$")


class TemplateProblem(AtelierError):
    """The template cannot be parsed or rendered (422 ``template_error``)."""

    status = 422
    code = "template_error"


class MissingVariable(AtelierError):
    """A variable the template uses was not given (422 ``missing_variable``, with ``variable``)."""

    status = 422
    code = "missing_variable"


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class Rendered:
    prompt: str
    system: str | None


def variables_of(prompt: str, system: str | None = None) -> list[str]:
    """The variable names ``prompt`` and ``system`` use, sorted; raises :class:`TemplateProblem` on bad syntax."""
    names: set[str] = set()
    for field_name, source in (("prompt", prompt), ("system", system)):
        if source:
            names |= meta.find_undeclared_variables(_parse(source, field_name))
    return sorted(names)


def check_syntax(prompt: str, system: str | None = None) -> None:
    """Raise :class:`TemplateProblem` (with the field and line) when either text is not a valid template."""
    variables_of(prompt, system)


def render(prompt: str, system: str | None, variables: dict[str, Any]) -> Rendered:
    """Render both texts with ``variables``; every failure is a :class:`TemplateProblem` or
    :class:`MissingVariable`, never another exception."""
    return Rendered(
        prompt=_render(prompt, variables, "prompt"),
        system=_render(system, variables, "system") if system else system,
    )


def _parse(source: str, field_name: str) -> Any:
    try:
        return _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"The template's {field_name} has a syntax error on line {exc.lineno}: {(exc.message or '').rstrip('.')}.",
            field=field_name, line=exc.lineno,
        ) from None


@functools.lru_cache(maxsize=64)
def _compiled(source: str, field_name: str) -> Any:
    """Parsed and compiled once per text: a batch renders one template for up to 1,000 rows."""
    return _ENV.from_string(_parse(source, field_name))


def _render(source: str, variables: dict[str, Any], field_name: str) -> str:
    template = _compiled(source, field_name)
    parts: list[str] = []
    size = 0
    try:
        # generate() lets a runaway loop be stopped as soon as the output passes the limit.
        for chunk in template.generate(**variables):
            size += len(chunk)
            if size > MAX_RENDERED:
                raise TemplateProblem(
                    f"The template's {field_name} renders to more than {MAX_RENDERED:,} characters; "
                    "shorten it or the values you give it.",
                    field=field_name,
                )
            parts.append(chunk)
    except SecurityError as exc:
        raise TemplateProblem(
            f"The template's {field_name} uses something templates may not use ({exc}). Use variables, "
            "filters and {% if %} only.",
            field=field_name,
        ) from None
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.match(str(exc))
        if match:
            name = match.group(1)
            raise MissingVariable(
                f'The template needs a value for "{name}"; add it to the variables.', variable=name,
                field=field_name,
            ) from None
        raise TemplateProblem(f"The template's {field_name} could not be rendered: {exc}.",
                              field=field_name) from None
    except TemplateError as exc:
        raise TemplateProblem(f"The template's {field_name} could not be rendered: {exc}.",
                              field=field_name) from None
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError, OverflowError) as exc:
        # Errors raised by a filter or an expression on the values given (e.g. ``{{ 1 / 0 }}``).
        raise TemplateProblem(f"The template's {field_name} could not be rendered: {exc}.",
                              field=field_name) from None
    return "".join(parts)


async def apply(store: Any, *, template_id: str, variables: dict[str, Any]) -> tuple[dict[str, Any], Rendered]:
    """A saved template (404 ``not_found`` when there is none) rendered with ``variables``."""
    from backend.db import templates as rows

    row = await rows.get(store, template_id=template_id)
    return row, render(row["prompt"], row["system"], variables)


def render_rows(prompt: str, system: str | None, rows: list[dict[str, Any]]) -> list[Rendered]:
    """Render both texts once per row. A failure names the row (``row``, counted from 1)."""
    out: list[Rendered] = []
    for number, variables in enumerate(rows, start=1):
        try:
            out.append(render(prompt, system, variables))
        except AtelierError as exc:
            exc.extra["row"] = number
            exc.message = f"Row {number}: {exc.message}"
            raise
    return out
