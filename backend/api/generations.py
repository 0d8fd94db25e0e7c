"""``/generations``: create (persisted before sending), read, list, stream events, retry, cancel, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from backend.api.deps import AdmissionDep, LibraryDep, OutboxDep, StoreDep
from backend.core.errors import AtelierError, Conflict, NotFound
from backend.core.vocabulary import Kind, Status
from backend.db import generations as gens
from backend.db import listing
from backend.db.store import Store
from backend.outbox.attempt import REJECT_CODES
from backend.outbox.events import FINAL, Event, Running
from backend.services import templates
from backend.services.admission import GenerationRequest

router = APIRouter(tags=["generations"])

MAX_PROMPT = 200_000


class GenerationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Kind
    model: str = Field(min_length=1, max_length=200)
    prompt: str | None = Field(default=None, max_length=MAX_PROMPT)
    system: str | None = Field(default=None, max_length=MAX_PROMPT)
    template_id: str | None = Field(default=None, min_length=1, max_length=64,
                                    description="Render this template instead of sending `prompt`.")
    variables: dict[str, Any] | None = Field(default=None, max_length=200,
                                             description="The template's values (with `template_id`).")
    params: dict[str, Any] = Field(default_factory=dict)
    input_asset_ids: list[str] = Field(default_factory=list, max_length=16)
    stream: bool = False
    defer: bool = False
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=32)
    title: str | None = Field(default=None, max_length=300)
    conversation_id: str | None = Field(default=None, min_length=1, max_length=64)
    parent_id: str | None = Field(default=None, min_length=1, max_length=64)
    sibling_of: str | None = Field(default=None, min_length=1, max_length=64,
                                   description="Regenerate or edit this turn: a new branch beside it.")

    @field_validator("model")
    @classmethod
    def _model_id(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() for c in value):
            raise ValueError("a model id has no spaces, e.g. openai/gpt-4o-mini")
        return value

    @model_validator(mode="after")
    def _prompt_or_template(self) -> GenerationIn:
        if self.template_id is None:
            if self.prompt is None:
                raise ValueError("give a prompt, or a template_id with its variables")
            if self.variables is not None:
                raise ValueError("variables go with a template_id")
        elif self.prompt is not None:
            raise ValueError("give either a prompt or a template_id, not both")
        return self


class GenerationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] | None = Field(default=None, max_length=32)
    favorite: bool | None = None
    title: str | None = Field(default=None, max_length=300)


def _response_for(record: dict[str, Any], *, created: int = 201) -> JSONResponse:
    """The HTTP answer for a generation after its first attempt: 201/202 done or accepted, 400 rejected upstream,
    502 queued again or interrupted, 507 not saved."""
    status = record["status"]
    error = record.get("error") or {}
    if status in (Status.SUCCEEDED, Status.RUNNING):
        return JSONResponse(record, status_code=created)
    if status == Status.CANCELLED:
        return JSONResponse(record, status_code=200)
    if status == Status.FAILED and error.get("code") not in (None, "internal_error") and (
            error.get("code") in REJECT_CODES or error.get("upstream_status") in (400, 401, 402, 403, 404, 413, 422)):
        code = error["code"] if error["code"] in REJECT_CODES else "bad_request"
        body = {"error": {**error, "code": code, "upstream_status": error.get("upstream_status")}, "generation": record}
        return JSONResponse(body, status_code=400)
    if status == Status.FAILED:
        code = error.get("code")
        http = 507 if code == "storage_error" else 422 if code in ("no_image_output", "media_too_large",
                                                                    "bad_media") else 500
        return JSONResponse({"error": error, "generation": record}, status_code=http)
    # queued again (retryable) or interrupted: OpenRouter could not give an answer now.
    return JSONResponse({"error": error or {"code": "upstream_unavailable", "message": "OpenRouter did not answer."},
                         "generation": record}, status_code=502)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.post("/generations", status_code=201)
async def create_generation(body: GenerationIn, admission: AdmissionDep, outbox: OutboxDep,
                            store: StoreDep) -> Response:
    """Create a generation. It is written to the database before anything is sent. With ``template_id`` the
    template is rendered with ``variables`` first (422 ``missing_variable`` / ``template_error``)."""
    row, start_now = await admission.admit(await _request(body, store))
    gen_id = row["id"]
    if not start_now:
        outbox.wake()
        return JSONResponse(await gens.record(store, gen_id), status_code=202)

    running, queue = outbox.send_now(row)
    if body.stream:
        # The first event carries the record as just written: no read on the way to the first token.
        return await _stream_response(store, running, queue, gens.to_record(row))
    try:
        if body.kind == Kind.VIDEO:
            await asyncio.shield(running.started.wait())  # 202 once OpenRouter accepted the job
        else:
            await asyncio.shield(running.task)
    finally:
        running.unsubscribe(queue)
    record = await gens.record(store, gen_id)
    if body.kind != Kind.VIDEO and record["status"] == Status.RUNNING:
        # The attempt ended but its outcome could not be written: the disk refused it.
        return JSONResponse({"error": {"code": "storage_error", "message": "Atelier could not save this generation "
                                       "(the disk may be full or read-only). Free some space, then retry it."},
                             "generation": record}, status_code=507)
    return _response_for(record, created=202 if body.kind == Kind.VIDEO else 201)


async def _request(body: GenerationIn, store: Store) -> GenerationRequest:
    """The request to admit: the prompt as given, or the template rendered (its system prompt, parameters and
    tags under what the body gives)."""
    fields = body.model_dump()
    if body.template_id is None:
        return GenerationRequest(**fields)
    variables = body.variables or {}
    template, rendered = await templates.apply(store, template_id=body.template_id, variables=variables)
    fields.update(prompt=rendered.prompt, system=body.system if body.system is not None else rendered.system,
                  params={**template["params"], **body.params},
                  tags=list(dict.fromkeys([*template["tags"], *body.tags])), variables=variables)
    return GenerationRequest(**fields)


async def _stream_response(store: Store, running: Running, queue: asyncio.Queue,
                           first_record: dict[str, Any]) -> Response:
    """Wait until OpenRouter starts answering; failures before that get a plain JSON answer (502/400)."""
    waiter = asyncio.ensure_future(running.started.wait())
    try:
        await asyncio.shield(waiter)
    finally:
        waiter.cancel()
    pending: list[tuple[str, Any]] = []
    while not queue.empty():
        pending.append(queue.get_nowait())
    terminal = [e for e in pending if e[0] in FINAL]
    if terminal and not any(e[0] in (Event.STARTED, Event.DELTA) for e in pending) and terminal[0][0] != Event.DONE:
        running.unsubscribe(queue)
        record = await gens.record(store, running.gen_id)
        return _response_for(record)

    async def events() -> AsyncIterator[bytes]:
        try:
            yield _sse(Event.GENERATION, first_record)
            backlog = list(pending)
            while True:
                if backlog:
                    event, data = backlog.pop(0)
                else:
                    try:
                        event, data = await asyncio.wait_for(queue.get(), timeout=15)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                if event in (Event.GENERATION, Event.STARTED, Event.KEEPALIVE):
                    continue
                if event == Event.QUEUED:
                    yield _sse(Event.ERROR, data)
                    return
                yield _sse(event, data)
                if event in (Event.DONE, Event.ERROR):
                    return
        finally:
            running.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/generations")
async def list_generations(
    store: StoreDep,
    q: Annotated[str | None, Query(max_length=500)] = None,
    kind: Kind | None = None,
    status: Status | None = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    favorite: bool | None = None,
    collection_id: Annotated[str | None, Query(max_length=64)] = None,
    batch_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> dict[str, Any]:
    """Newest first; ``q`` searches prompt, output and title; ``collection_id`` keeps a collection's items,
    ``batch_id`` a batch's."""
    items, next_cursor = await listing.search(store, q=q, kind=kind, status=status, model=model, tag=tag,
                                           favorite=favorite, collection_id=collection_id, batch_id=batch_id,
                                           limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/generations/{gen_id}")
async def get_generation(gen_id: str, store: StoreDep) -> dict[str, Any]:
    return await gens.record(store, _checked(gen_id))


@router.get("/generations/{gen_id}/events")
async def generation_events(gen_id: str, outbox: OutboxDep, store: StoreDep) -> StreamingResponse:
    """SSE: the current record, then progress, until a terminal status."""
    await gens.get_row(store, _checked(gen_id))

    async def events() -> AsyncIterator[bytes]:
        async for event, data in outbox.events(gen_id):
            if event == Event.PING:
                yield b": keep-alive\n\n"
                continue
            yield _sse(event, data)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@router.patch("/generations/{gen_id}")
async def patch_generation(gen_id: str, body: GenerationPatch, store: StoreDep) -> dict[str, Any]:
    await gens.get_row(store, _checked(gen_id))
    changes: dict[str, Any] = {}
    if body.tags is not None:
        changes["tags"] = list(dict.fromkeys(t.strip() for t in body.tags if t.strip()))
    if body.favorite is not None:
        changes["favorite"] = body.favorite
    if "title" in body.model_fields_set:
        changes["title"] = body.title
    await gens.update(store, gen_id, **changes)
    return await gens.record(store, gen_id)


@router.delete("/generations/{gen_id}", status_code=204)
async def delete_generation(gen_id: str, library: LibraryDep, store: StoreDep) -> Response:
    """Delete a generation and its files (files still used by another generation are kept)."""
    await gens.get_row(store, _checked(gen_id))
    await library.delete([gen_id])
    return Response(status_code=204)


@router.post("/generations/{gen_id}/retry", status_code=202)
async def retry_generation(gen_id: str, outbox: OutboxDep, store: StoreDep) -> dict[str, Any]:
    row = await gens.get_row(store, _checked(gen_id))
    try:
        retried = await outbox.retry(gen_id)
    except AtelierError as refusal:  # policy or the budget no longer allow it: it failed, nothing was sent
        refusal.extra["generation"] = await gens.record(store, gen_id)
        raise
    if not retried:
        raise Conflict(f"This generation is {row['status']}; only queued, failed, interrupted or cancelled ones can "
                       "be retried.")
    return await gens.record(store, gen_id)


@router.post("/generations/{gen_id}/cancel")
async def cancel_generation(gen_id: str, outbox: OutboxDep, store: StoreDep) -> dict[str, Any]:
    row = await gens.get_row(store, _checked(gen_id))
    if not await outbox.cancel(gen_id):
        raise Conflict(f"This generation is already {row['status']}.")
    return await gens.record(store, gen_id)


def _checked(gen_id: str) -> str:
    if not (0 < len(gen_id) <= 64 and gen_id.isalnum()):
        raise NotFound(f"No generation with id '{gen_id[:64]}'.")
    return gen_id
