"""``GET /generation?id=``: what one generation used and cost, looked up by its OpenRouter id after it ended.

A stream stopped by the user (or cut off) never reaches its final usage chunk, so its cost is only known from
these stats. OpenRouter answers 404 for a short while after a generation ends (docs/openrouter.md, "Generation
stats"); :func:`generation_stats` returns None then, and the caller asks again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from backend.openrouter.errors import UpstreamError, unexpected_answer
from backend.openrouter.results import as_float, as_int

__all__ = ["GenerationStats", "generation_stats"]


@dataclass(frozen=True)
class GenerationStats:
    """Tokens and cost of one generation (USD), as OpenRouter's stats report them.

    ``cost_usd`` is what the user spent: ``total_cost``, plus the provider's charge
    (``upstream_inference_cost``) for bring-your-own-key generations, as for a usage chunk (``Usage``).
    """

    upstream_id: str
    cost_usd: float
    prompt_tokens: int | None
    completion_tokens: int | None
    cancelled: bool

    @classmethod
    def from_data(cls, upstream_id: str, data: Any) -> GenerationStats | None:
        """From the answer's ``data`` object; None when it carries no cost (not known yet)."""
        if not isinstance(data, dict):
            return None
        cost = as_float(data.get("total_cost"))
        if cost is None:
            return None
        upstream = as_float(data.get("upstream_inference_cost"))
        if data.get("is_byok") is True and upstream is not None:
            cost += upstream
        prompt = as_int(data.get("tokens_prompt"))
        completion = as_int(data.get("tokens_completion"))
        return cls(
            upstream_id=upstream_id,
            cost_usd=cost,
            prompt_tokens=prompt if prompt is not None else as_int(data.get("native_tokens_prompt")),
            completion_tokens=completion if completion is not None else as_int(data.get("native_tokens_completion")),
            cancelled=data.get("cancelled") is True,
        )


async def generation_stats(client: Any, api_key: str, upstream_id: str) -> GenerationStats | None:
    """The stats of ``upstream_id``, or None while OpenRouter does not have them (404, or no cost yet).

    Raises :class:`UpstreamError` for anything else (offline, 401, 5xx, an answer that is not JSON). The key
    goes only to OpenRouter, in the ``Authorization`` header (the client's rule); the id goes in the query.
    """
    try:
        payload = await client.get_json("generation", api_key, params={"id": upstream_id}, context="generation")
    except UpstreamError as exc:
        if exc.upstream_status == 404:
            return None
        raise
    if not isinstance(payload, dict):
        raise unexpected_answer(200, "no generation data")
    return GenerationStats.from_data(upstream_id, payload.get("data"))
