"""Forms → backend request bodies: the one place that reads what a screen posts and checks it.

Every screen that sends a generation (the Studio's text, image and video composers, with or without
JavaScript) builds its ``POST /generations`` body with :func:`generation_request`; tags and the monthly
budget are read here too. A value that cannot be used raises :class:`FormError`, whose message is shown to
the user as it is (400), so a bad number never reaches the backend or becomes a server error.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from backend.core.vocabulary import Kind

MODES = tuple(Kind)
MAX_PROMPT_CHARS = 200_000
#: Aspect ratios and sizes OpenRouter's image models accept (``image_config``); the model ignores what it lacks.
IMAGE_ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_SIZES = ("1K", "2K", "4K")
#: Reference images the backend accepts per generation.
MAX_REFERENCES = 16
MAX_TAGS = 32
MAX_TAG_CHARS = 64
#: Words a checkbox or a JSON twin of the form uses for "on".
_TRUE = frozenset({"1", "on", "true"})


#: Form fields holding a template's variables in the Studio ("Use template"): ``var__<name>``.
VARIABLE_PREFIX = "var__"


class FormError(ValueError):
    """A posted value that cannot be used; ``message`` says which and what to enter instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _blank(value: Any) -> bool:
    return value is None or str(value).strip() == ""


def _number(value: Any, label: str, low: float, high: float) -> float | None:
    """A finite number in ``[low, high]``; None for an empty field. ``nan``, ``inf`` and words are refused."""
    if _blank(value):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise FormError(f"{label} must be a number from {low:g} to {high:g}.")
    return number


def _whole(value: Any, label: str, low: int, high: int) -> int | None:
    """A whole number in ``[low, high]``; None for an empty field."""
    if _blank(value):
        return None
    text = str(value).strip()
    try:
        number = int(text)
    except ValueError:
        raise FormError(f"{label} must be a whole number from {low:,} to {high:,}.") from None
    if not low <= number <= high:
        raise FormError(f"{label} must be a whole number from {low:,} to {high:,}.")
    return number


def _choice(value: Any, allowed: Iterable[str] | None = None) -> str | None:
    """A short option value (``16:9``, ``1080p``); anything else, or one not in ``allowed``, is left out."""
    text = str(value or "").strip()
    if not text or len(text) > 20:
        return None
    if allowed is not None and text not in set(allowed):
        return None
    return text


def is_on(value: Any) -> bool:
    """Whether a checkbox (or its JSON twin) is ticked."""
    return str(value or "").strip().lower() in _TRUE


def asset_ids(values: Any) -> list[str]:
    """Reference asset ids from the form (a list, or one comma-separated string), de-duplicated."""
    if isinstance(values, str):
        values = values.split(",")
    ids: list[str] = []
    for value in values or []:
        ident = str(value or "").strip()
        if ident and ident.isalnum() and len(ident) <= 64 and ident not in ids:
            ids.append(ident)
    return ids


def _text_params(form: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    temperature = _number(form.get("temperature"), "Temperature", 0.0, 2.0)
    if temperature is not None:
        params["temperature"] = temperature
    max_tokens = _whole(form.get("max_tokens"), "Max tokens", 1, 1_000_000)
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    return params


def _image_params(form: Mapping[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    aspect_ratio = _choice(form.get("aspect_ratio"), IMAGE_ASPECT_RATIOS)
    if aspect_ratio:
        params["aspect_ratio"] = aspect_ratio
    image_size = _choice(form.get("image_size"), IMAGE_SIZES)
    if image_size:
        params["image_size"] = image_size
    return params


def video_params(form: Mapping[str, Any]) -> dict[str, Any]:
    """A video's parameters from the Studio's (or the Batch page's) fields; :class:`FormError` for a bad one."""
    params: dict[str, Any] = {}
    duration = _whole(form.get("duration"), "Duration", 1, 600)
    if duration is not None:
        params["duration"] = duration
    for name in ("resolution", "aspect_ratio", "size"):
        value = _choice(form.get(name))
        if value:
            params[name] = value
    # A checkbox sends nothing when unticked: ``audio_offered`` says the model offered the choice at all.
    if form.get("audio_offered") or "generate_audio" in form:
        params["generate_audio"] = is_on(form.get("generate_audio"))
    seed = _whole(form.get("seed"), "Seed", 0, 2**31 - 1)
    if seed is not None:
        params["seed"] = seed
    return params


def generation_request(form: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a Studio form (or its JSON twin) into a ``POST /generations`` body; :class:`FormError` if it cannot.

    Image forms carry ``input_asset_ids`` (reference images); video forms ``first_frame_id`` and
    ``last_frame_id``, sent as the first two ``input_asset_ids`` as the backend expects.
    """
    kind = str(form.get("kind") or "text")
    if kind not in MODES:
        raise FormError("Unknown generation kind.")
    prompt = str(form.get("prompt") or "").strip()
    model = str(form.get("model") or "").strip()
    references: list[str] = []
    if kind in ("text", "image"):  # text turns may carry images for vision models
        references = asset_ids(form.get("input_asset_ids"))
    elif kind == "video":
        first, last = asset_ids(form.get("first_frame_id")), asset_ids(form.get("last_frame_id"))
        if last and not first:
            raise FormError("Add a first frame too: a last frame is only used together with a first frame.")
        references = (first[:1] + last[:1]) if first else []
    template_id = str(form.get("template_id") or "").strip()
    if not prompt and not template_id and not (kind != "text" and references):
        raise FormError("Write a prompt first.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise FormError(f"The prompt is too long (over {MAX_PROMPT_CHARS:,} characters).")
    if not model:
        raise FormError("Pick a model first.")
    if len(references) > MAX_REFERENCES:
        raise FormError(f"Use at most {MAX_REFERENCES} reference images.")
    body: dict[str, Any] = {"kind": kind, "model": model, "prompt": prompt}
    if template_id:
        # "Use template": the engine renders it with the values of the form's variable fields.
        del body["prompt"]
        body["template_id"] = template_id
        body["variables"] = {key[len(VARIABLE_PREFIX):]: str(value) for key, value in form.items()
                             if key.startswith(VARIABLE_PREFIX)}
    if kind == "text":
        system = str(form.get("system") or "").strip()
        if system:
            body["system"] = system
        params = _text_params(form)
    elif kind == "image":
        params = _image_params(form)
    else:
        params = video_params(form)
    if params:
        body["params"] = params
    if references:
        body["input_asset_ids"] = references
    if kind != "video":  # a turn of a conversation: where it goes (docs/api.md, "Conversations")
        for name in ("conversation_id", "parent_id", "sibling_of"):
            ident = asset_ids(form.get(name))
            if ident:
                body[name] = ident[0]
    return body


def tags(text: str) -> list[str]:
    """``"cats, Sketches , cats"`` → ``["cats", "Sketches"]`` (trimmed, de-duplicated, order kept)."""
    seen: dict[str, None] = {}
    for part in text.replace("\n", ",").split(","):
        tag = part.strip()[:MAX_TAG_CHARS]
        if tag and tag.lower() not in {t.lower() for t in seen}:
            seen[tag] = None
    return list(seen)[:MAX_TAGS]


def budget(text: str) -> float | None:
    """The monthly budget box: dollars (``25``, ``$12.50``, ``1,000``) rounded to cents; None when empty."""
    text = (text or "").strip().lstrip("$").replace(",", "")
    if not text:
        return None  # an empty box means "no limit"
    try:
        amount = float(text)
    except ValueError:
        raise FormError("The monthly budget must be an amount in dollars, such as 25 or 12.50.") from None
    if not math.isfinite(amount) or amount < 0:
        raise FormError("The monthly budget must be zero or more.")
    return round(amount, 2)
