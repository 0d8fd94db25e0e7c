"""The model catalogue, cached in DuckDB so the model picker works offline."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from backend.db.store import Store
from backend.db.time import iso, now
from backend.openrouter import Modality, OpenRouterClient, UpstreamError

log = logging.getLogger(__name__)

OUTPUTS = tuple(Modality)


def _item(model: dict[str, Any], video: dict[str, Any] | None = None) -> dict[str, Any]:
    arch = model.get("architecture") or {}
    item = {
        "id": model.get("id"),
        "name": model.get("name") or model.get("id"),
        "input_modalities": arch.get("input_modalities") or model.get("input_modalities") or [Modality.TEXT],
        "output_modalities": arch.get("output_modalities") or model.get("output_modalities") or [Modality.TEXT],
        "pricing": model.get("pricing") or {},
        "context_length": model.get("context_length"),
        "description": model.get("description"),
    }
    if video is not None:
        item["video"] = {k: video.get(k) for k in (
            "supported_resolutions", "supported_aspect_ratios", "supported_sizes", "supported_durations",
            "supported_frame_images", "generate_audio", "seed", "pricing_skus")}
        item["pricing"] = item["pricing"] or {"skus": video.get("pricing_skus")}
    return item


class Catalogue:
    def __init__(self, store: Store, client: OpenRouterClient, *, refresh_hours: float = 24.0, policy: Any = None):
        self.store = store
        self.client = client
        self.refresh_hours = refresh_hours
        self.policy = policy

    async def refresh(self, output: str, api_key: str | None = None) -> int:
        """Fetch one output kind from OpenRouter and replace its cache rows in one transaction."""
        models = await self.client.list_models(output, api_key)
        videos: dict[str, dict[str, Any]] = {}
        if output == Modality.VIDEO:
            try:
                videos = {v.get("id"): v for v in await self.client.video_models(api_key)}
            except UpstreamError as exc:
                log.info("video model details unavailable: %s", exc.message)
            known = {m.get("id") for m in models}
            models += [v for vid, v in videos.items() if vid not in known]
        ts = now()
        items = [_item(m, videos.get(m.get("id")) if output == Modality.VIDEO else None) for m in models if m.get("id")]

        def write(cur: Any) -> None:
            cur.execute("DELETE FROM model_cache WHERE output = ?", [output])
            for item in items:
                cur.execute("INSERT OR REPLACE INTO model_cache VALUES (?, ?, ?, ?)",
                            [output, item["id"], json.dumps(item), ts])

        await self.store.transaction(write)
        return len(items)

    async def refresh_all(self, api_key: str | None = None) -> None:
        for output in OUTPUTS:
            try:
                await self.refresh(output, api_key)
            except UpstreamError as exc:
                log.info("model catalogue (%s) not refreshed: %s", output, exc.message)
                return

    async def needs_refresh(self) -> bool:
        row = await self.store.fetchone("SELECT min(fetched_at) AS t, count(DISTINCT output) AS n FROM model_cache")
        if not row or row["t"] is None or row["n"] < len(OUTPUTS):
            return True
        return now() - row["t"] > timedelta(hours=self.refresh_hours)

    async def list(self, output: str) -> dict[str, Any]:
        rows = await self.store.fetchall(
            "SELECT data, fetched_at FROM model_cache WHERE output = ? ORDER BY id", [output]
        )
        items = [json.loads(r["data"]) for r in rows]
        if self.policy is not None:
            items = [i for i in items if self.policy.model_allowed(i["id"])]
        fetched = min((r["fetched_at"] for r in rows), default=None)
        stale = fetched is None or now() - fetched > timedelta(hours=self.refresh_hours)
        return {"items": items, "fetched_at": iso(fetched), "stale": stale}

    async def sees_images(self, model_id: str) -> bool | None:
        """Whether the model takes images as input, as the cached catalogue says; None when it does not list
        the model (never fetched, or not listed by OpenRouter): the caller then lets the request through."""
        model = await self.get_model(model_id)
        if model is None or not isinstance(model.get("input_modalities"), list):
            return None
        return "image" in model["input_modalities"]

    async def get_model(self, model_id: str, output: str | None = None) -> dict[str, Any] | None:
        sql = "SELECT data FROM model_cache WHERE id = ?"
        params: list[Any] = [model_id]
        if output:
            sql += " AND output = ?"
            params.append(output)
        row = await self.store.fetchone(sql + " LIMIT 1", params)
        return json.loads(row["data"]) if row else None
