"""``/models``: the catalogue, served from the DuckDB cache so it works offline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from backend.api.deps import CatalogueDep, ConnectivityDep, KeysDep
from backend.openrouter import Modality, UpstreamError

router = APIRouter(tags=["models"])


@router.get("/models")
async def list_models(catalogue: CatalogueDep, keys: KeysDep, connectivity: ConnectivityDep,
                      output: Modality = Modality.TEXT, refresh: bool = False) -> dict[str, Any]:
    """Models whose output includes ``output``. The first call (or ``refresh=true``) fetches from OpenRouter
    when it answers; otherwise the cache is served, with ``stale`` telling how fresh it is."""
    listing = await catalogue.list(output)
    if refresh or not listing["items"]:
        try:
            await catalogue.refresh(output, await keys.get())
            connectivity.mark(True)
            listing = await catalogue.list(output)
        except UpstreamError as exc:
            if exc.code == "network":
                connectivity.mark(False)
    return listing
