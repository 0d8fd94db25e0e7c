"""Batches and compares: one template (or prompt) × rows × models × repeat, written as queued generations in
one transaction and drained by the outbox like any other queued item (docs/api.md, "Batches").

What is checked up front: parameters, machine policy for every model, the template and every row's values
(a missing one names the row and the variable), the size (at most :data:`MAX_ITEMS`), this month's budget
and the outbox limit. Policy and budget are checked again by the outbox before each item is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.core.errors import AtelierError, Conflict
from backend.core.policy import Policy
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.core.vocabulary import Kind
from backend.db import batches as rows_db
from backend.db import templates as templates_db
from backend.db.batches import BatchState
from backend.db.store import Store
from backend.services import templates as engine
from backend.services.admission import check_params, send_refusal

if TYPE_CHECKING:
    from backend.outbox.worker import Outbox

#: At most this many generations in one batch (rows × models × repeat).
MAX_ITEMS = 5_000


@dataclass
class BatchRequest:
    kind: str
    models: list[str]
    rows: list[dict[str, Any]]
    template_id: str | None = None
    prompt: str | None = None
    name: str | None = None
    repeat: int = 1
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)


class Batches:
    """Creates batches and pauses, resumes or cancels them."""

    def __init__(self, *, store: Store, settings: Settings, policy: Policy | None, preferences: Preferences,
                 outbox: Outbox) -> None:
        self.store = store
        self.settings = settings
        self.policy = policy
        self.preferences = preferences
        self.outbox = outbox

    async def create(self, request: BatchRequest) -> dict[str, Any]:
        total = len(request.rows) * len(request.models) * request.repeat
        if total > MAX_ITEMS:
            raise AtelierError(
                f"This batch would make {total:,} generations ({len(request.rows)} rows × {len(request.models)} "
                f"models × {request.repeat}); at most {MAX_ITEMS:,} fit in one batch. Split the rows.",
                code="batch_too_large", status=422, total=total, limit=MAX_ITEMS)
        prompt, system, params, tags = request.prompt, request.system, dict(request.params), list(request.tags)
        if request.template_id is not None:
            template = await templates_db.get(self.store, template_id=request.template_id)
            prompt = template["prompt"]
            system = request.system if request.system is not None else template["system"]
            params = {**template["params"], **request.params}
            tags = list(dict.fromkeys([*template["tags"], *request.tags]))
        assert prompt is not None  # the router asks for one of the two
        check_params(params)
        for model in request.models:
            if self.policy is not None and not self.policy.model_allowed(model):
                raise AtelierError(f"Your organisation's policy does not allow the model '{model}'.",
                                   code="model_not_allowed", status=403, model=model)
        templated = request.template_id is not None or any(request.rows)
        if templated:
            rendered = engine.render_rows(prompt, system, request.rows)
        else:
            rendered = [engine.Rendered(prompt=prompt, system=system)] * len(request.rows)
        if request.kind != Kind.VIDEO and any(not r.prompt.strip() for r in rendered):
            empty = next(i for i, r in enumerate(rendered, start=1) if not r.prompt.strip())
            raise AtelierError(f"Row {empty} renders an empty prompt; give it a value.", code="invalid_request",
                               status=422, row=empty)
        refusal = await send_refusal(store=self.store, policy=None, preferences=self.preferences,
                                     model=request.models[0])
        if refusal is not None:
            raise refusal
        limit = self.settings.outbox_max_queued
        if self.policy is not None and self.policy.get("outbox_max_queued") is not None:
            limit = self.policy.value("outbox_max_queued")
        backlog = await self.outbox.backlog()
        if backlog + total > limit:
            raise AtelierError(f"The outbox holds {backlog} requests and this batch adds {total} (the limit is "
                               f"{limit}). Wait for some to go out or make the batch smaller.",
                               code="outbox_full", status=429)
        items = [
            rows_db.Item(model=model, prompt=r.prompt, system=r.system, variables=variables if templated else None)
            for r, variables in zip(rendered, request.rows, strict=True)
            for _ in range(request.repeat)
            for model in request.models
        ]
        batch_id = await rows_db.insert(
            self.store, name=request.name, kind=request.kind, models=request.models, template_id=request.template_id,
            prompt=request.prompt, system=request.system, params=params, tags=tags, rows_count=len(request.rows),
            repeats=request.repeat, items=items)
        self.outbox.added(total)
        self.outbox.wake()
        return await rows_db.record(self.store, batch_id=batch_id)

    async def pause(self, batch_id: str) -> dict[str, Any]:
        """Nothing more of the batch is sent; items already out finish."""
        await self._set(batch_id, BatchState.PAUSED)
        return await rows_db.record(self.store, batch_id=batch_id)

    async def resume(self, batch_id: str) -> dict[str, Any]:
        await self._set(batch_id, BatchState.ACTIVE)
        self.outbox.connectivity.recheck()
        self.outbox.wake()
        return await rows_db.record(self.store, batch_id=batch_id)

    async def cancel(self, batch_id: str) -> dict[str, Any]:
        """Cancel what has not finished; what finished stays. The state is written first, so the outbox claims
        nothing more of it; items already claimed are cancelled one by one (a stream keeps its text)."""
        await self._set(batch_id, BatchState.CANCELLED)
        await rows_db.cancel_queued(self.store, batch_id=batch_id)
        for gen_id in await rows_db.running_ids(self.store, batch_id=batch_id):
            await self.outbox.cancel(gen_id)
        return await rows_db.record(self.store, batch_id=batch_id)

    async def _set(self, batch_id: str, state: str) -> None:
        row = await rows_db.get(self.store, batch_id=batch_id)
        if row["state"] == BatchState.CANCELLED and state != BatchState.CANCELLED:
            raise Conflict("This batch was cancelled; retry its items one by one instead.")
        await rows_db.set_state(self.store, batch_id=batch_id, state=state)
