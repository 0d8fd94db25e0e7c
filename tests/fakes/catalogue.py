"""The fake OpenRouter's model catalogue: a few text, image and video models shaped like ``GET /models``.

Some optional fields are ``null`` or missing on purpose (clients must cope), and pricing values are strings.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["DEFAULT_MODEL", "MODELS", "VIDEO_MODELS", "find_model", "list_models", "provider_of"]

DEFAULT_MODEL = "openai/gpt-4o-mini"

_TEXT_PARAMS = [
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "response_format",
    "tools",
    "tool_choice",
]


def _model(
    model_id: str,
    name: str,
    *,
    created: int,
    context: int,
    inputs: list[str],
    outputs: list[str],
    pricing: dict[str, str],
    provider: str,
    max_completion: int | None = 16384,
    **extra: Any,
) -> dict[str, Any]:
    arrow = "+".join(inputs) + "->" + "+".join(outputs)
    model: dict[str, Any] = {
        "id": model_id,
        "canonical_slug": model_id.split(":")[0] + "-20250101",
        "hugging_face_id": None,
        "name": name,
        "created": created,
        "description": f"{name}, served by the fake OpenRouter.",
        "context_length": context,
        "architecture": {
            "modality": arrow,
            "input_modalities": inputs,
            "output_modalities": outputs,
            "tokenizer": "Other",
            "instruct_type": None,
        },
        "pricing": pricing,
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": max_completion,
            "is_moderated": False,
        },
        "per_request_limits": None,
        "supported_parameters": list(_TEXT_PARAMS) if "text" in outputs else ["seed"],
        "default_parameters": None,
        "expiration_date": None,
        "knowledge_cutoff": None,
        "links": {"details": f"/api/v1/models/{model_id.split(':')[0]}/endpoints"},
        "_provider": provider,
    }
    model.update(extra)
    return model


MODELS: list[dict[str, Any]] = [
    _model(
        "openai/gpt-4o-mini",
        "OpenAI: GPT-4o-mini",
        created=1721260800,
        context=128000,
        inputs=["text", "image", "file"],
        outputs=["text"],
        provider="OpenAI",
        pricing={
            "prompt": "0.00000015",
            "completion": "0.0000006",
            "request": "0",
            "image": "0.000217",
            "web_search": "0",
            "internal_reasoning": "0",
            "input_cache_read": "0.000000075",
        },
        knowledge_cutoff="2023-10-01",
    ),
    _model(
        "anthropic/claude-sonnet-4.5",
        "Anthropic: Claude Sonnet 4.5",
        created=1759161600,
        context=1000000,
        inputs=["text", "image", "file"],
        outputs=["text"],
        provider="Anthropic",
        max_completion=64000,
        pricing={
            "prompt": "0.000003",
            "completion": "0.000015",
            "request": "0",
            "image": "0.0048",
            "input_cache_read": "0.0000003",
            "input_cache_write": "0.00000375",
        },
        reasoning={
            "supported_efforts": ["high", "medium", "low"],
            "default_effort": "medium",
            "default_enabled": False,
            "mandatory": False,
        },
    ),
    _model(
        "meta-llama/llama-3.3-70b-instruct:free",
        "Meta: Llama 3.3 70B Instruct (free)",
        created=1733443200,
        context=65536,
        inputs=["text"],
        outputs=["text"],
        provider="Chutes",
        max_completion=None,
        pricing={"prompt": "0", "completion": "0", "request": "0", "image": "0"},
    ),
    _model(
        "mistralai/mistral-small-3.2-24b-instruct",
        "Mistral: Mistral Small 3.2 24B",
        created=1750377600,
        context=131072,
        inputs=["text", "image"],
        outputs=["text"],
        provider="Mistral",
        pricing={"prompt": "0.00000005", "completion": "0.0000001"},
    ),
    _model(
        "openai/gpt-4o-audio-preview",
        "OpenAI: GPT-4o Audio",
        created=1755129600,
        context=128000,
        inputs=["text", "audio"],
        outputs=["text", "audio"],
        provider="OpenAI",
        pricing={"prompt": "0.0000025", "completion": "0.00001", "audio": "0.00004"},
    ),
    _model(
        "google/gemini-2.5-flash-image",
        "Google: Gemini 2.5 Flash Image",
        created=1759881600,
        context=32768,
        inputs=["image", "text"],
        outputs=["image", "text"],
        provider="Google AI Studio",
        max_completion=32768,
        pricing={
            "prompt": "0.0000003",
            "completion": "0.0000025",
            "request": "0",
            "image": "0.001238",
            "image_output": "0.00003",
        },
    ),
    _model(
        "openai/gpt-5-image-mini",
        "OpenAI: GPT-5 Image Mini",
        created=1760400000,
        context=400000,
        inputs=["file", "image", "text"],
        outputs=["image", "text"],
        provider="OpenAI",
        max_completion=128000,
        pricing={"prompt": "0.0000025", "completion": "0.000002", "image": "0.0000025"},
    ),
    _model(
        "black-forest-labs/flux.2-pro",
        "Black Forest Labs: FLUX.2 [pro]",
        created=1764028800,
        context=46864,
        inputs=["text", "image"],
        outputs=["image"],
        provider="Black Forest Labs",
        max_completion=None,
        pricing={"prompt": "0", "completion": "0", "image": "0.03"},
    ),
    _model(
        "google/veo-3.1",
        "Google: Veo 3.1",
        created=1760486400,
        context=1024,
        inputs=["text", "image"],
        outputs=["video"],
        provider="Google Vertex",
        max_completion=None,
        pricing={"prompt": "0", "completion": "0", "request": "0"},
    ),
    _model(
        "openai/sora-2-pro",
        "OpenAI: Sora 2 Pro",
        created=1759708800,
        context=1024,
        inputs=["text", "image"],
        outputs=["video"],
        provider="OpenAI",
        max_completion=None,
        pricing={"prompt": "0", "completion": "0"},
    ),
]
# Optional fields really are missing on some models.
del MODELS[3]["description"]
del MODELS[7]["top_provider"]["is_moderated"]

VIDEO_MODELS: list[dict[str, Any]] = [
    {
        "id": "google/veo-3.1",
        "canonical_slug": "google/veo-3.1",
        "name": "Google: Veo 3.1",
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9", "9:16"],
        "supported_sizes": None,
        "supported_durations": [4, 6, 8],
        "supported_frame_images": ["first_frame", "last_frame"],
        "generate_audio": True,
        "seed": True,
        "pricing_skus": {"video_seconds_720p": "0.40", "video_seconds_1080p": "0.40"},
        "allowed_passthrough_parameters": ["negativePrompt", "personGeneration"],
    },
    {
        "id": "openai/sora-2-pro",
        "canonical_slug": "openai/sora-2-pro",
        "name": "OpenAI: Sora 2 Pro",
        "supported_resolutions": ["720p", "1080p"],
        "supported_aspect_ratios": ["16:9", "9:16"],
        "supported_sizes": ["1280x720", "720x1280", "1792x1024", "1024x1792"],
        "supported_durations": [4, 8, 12],
        "supported_frame_images": ["first_frame"],
        "generate_audio": True,
        "seed": False,
        "pricing_skus": {"video_seconds": "0.30"},
        "allowed_passthrough_parameters": [],
    },
]


def find_model(model_id: str) -> dict[str, Any] | None:
    """The catalogue entry for ``model_id`` (exact id), or ``None``."""
    for model in MODELS:
        if model["id"] == model_id:
            return model
    return None


def provider_of(model_id: str) -> str:
    """The provider name the fake reports for a model."""
    model = find_model(model_id)
    return model["_provider"] if model else "OpenAI"


def list_models(output_modalities: str | None) -> list[dict[str, Any]]:
    """``GET /models`` data: text-output models by default; ``image``, ``video``, comma lists or ``all``."""
    wanted = {part.strip() for part in (output_modalities or "text").split(",") if part.strip()}
    out = []
    for model in MODELS:
        if "all" in wanted or wanted & set(model["architecture"]["output_modalities"]):
            public = copy.deepcopy(model)
            public.pop("_provider")
            out.append(public)
    return out
