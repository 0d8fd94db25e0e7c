"""Admission of a generation request: the checks it must pass before it is written to the outbox.

Parameter rules, machine policy, the monthly budget, the outbox limit and the key are checked here, then the
request is inserted. The request endpoint, batches and templates all admit through :class:`Admission`; the
outbox checks :func:`send_refusal` again before each attempt (policy or budget may have changed since).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backend.core.errors import AtelierError, NotFound
from backend.core.policy import Policy
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.core.vocabulary import Kind
from backend.db import assets as assets_db
from backend.db import generations as gens
from backend.db.store import Store
from backend.keys.credentials import Credentials
from backend.services.catalogue import Catalogue
from backend.services.conversations import place

if TYPE_CHECKING:
    from backend.outbox.worker import Outbox

_PARAM_RULES: dict[str, tuple[type | tuple[type, ...], float | None, float | None]] = {
    "temperature": ((int, float), 0, 2),
    "top_p": ((int, float), 0, 1),
    "max_tokens": (int, 1, 1_000_000),
    "seed": (int, None, None),
    "frequency_penalty": ((int, float), -2, 2),
    "presence_penalty": ((int, float), -2, 2),
    "duration": ((int, float), 1, 600),
}
_PARAM_TEXT = {"aspect_ratio", "image_size", "resolution", "size"}
_PARAM_OTHER = {"generate_audio": bool, "stop": (str, list), "reasoning": dict}


@dataclass
class GenerationRequest:
    """What a caller asks for (already validated for shape)."""

    kind: str
    model: str
    prompt: str
    system: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    input_asset_ids: list[str] = field(default_factory=list)
    stream: bool = False
    defer: bool = False
    tags: list[str] = field(default_factory=list)
    title: str | None = None
    conversation_id: str | None = None
    parent_id: str | None = None
    sibling_of: str | None = None
    template_id: str | None = None
    variables: dict[str, Any] | None = None


def check_params(params: dict[str, Any]) -> None:
    """Refuse (422) unknown parameters and values of the wrong type or out of range."""
    for name, value in params.items():
        if name in _PARAM_RULES:
            kind, low, high = _PARAM_RULES[name]
            ok = isinstance(value, kind) and not isinstance(value, bool)
            if ok and low is not None and high is not None:
                ok = low <= value <= high
            if not ok:
                bounds = f" from {low} to {high}" if low is not None else ""
                raise AtelierError(f"params.{name} must be a number{bounds}.", code="invalid_request", status=422)
        elif name in _PARAM_TEXT:
            if not isinstance(value, str) or not 0 < len(value) <= 20:
                raise AtelierError(f"params.{name} must be a short text such as '16:9'.", code="invalid_request",
                                   status=422)
        elif name in _PARAM_OTHER:
            if not isinstance(value, _PARAM_OTHER[name]):
                raise AtelierError(f"params.{name} has the wrong type.", code="invalid_request", status=422)
        else:
            known = ", ".join(sorted([*_PARAM_RULES, *_PARAM_TEXT, *_PARAM_OTHER]))
            raise AtelierError(f"Unknown parameter '{name}'. Known parameters: {known}.", code="invalid_request",
                               status=422)


async def send_refusal(*, store: Store, policy: Policy | None, preferences: Preferences,
                       model: str) -> AtelierError | None:
    """Why a request for ``model`` may not be sent now (machine policy, this month's budget), or None."""
    if policy is not None and not policy.model_allowed(model):
        return AtelierError(f"Your organisation's policy does not allow the model '{model}'.",
                            code="model_not_allowed", status=403)
    budget = await preferences.get("budget_monthly_usd")  # cached
    if budget is not None and await gens.month_spend(store) >= budget:
        return AtelierError(
            f"This month's spending has reached the budget of ${budget:.2f}. Raise the budget in Settings "
            "(or ask IT if it is set by policy).", code="budget_exceeded", status=402)
    return None


class Admission:
    """Checks a request and writes it to the outbox."""

    def __init__(self, *, store: Store, settings: Settings, policy: Policy | None, preferences: Preferences,
                 keys: Credentials, outbox: Outbox, catalogue: Catalogue | None = None) -> None:
        self.store = store
        self.catalogue = catalogue
        self.settings = settings
        self.policy = policy
        self.preferences = preferences
        self.keys = keys
        self.outbox = outbox

    async def check(self, request: GenerationRequest) -> None:
        """Raise the :class:`AtelierError` the caller should answer with, or return when admitted."""
        check_params(request.params)
        if request.kind != Kind.VIDEO and not request.prompt.strip() and not request.input_asset_ids:
            raise AtelierError("Write a prompt first.", code="invalid_request", status=422)
        if request.stream and request.kind != Kind.TEXT:
            raise AtelierError("Only text can be streamed; images and video arrive when finished.",
                               code="invalid_request", status=422)
        policy = self.policy
        if policy is not None and not policy.model_allowed(request.model):
            raise AtelierError(f"Your organisation's policy does not allow the model '{request.model}'.",
                               code="model_not_allowed", status=403)
        if request.input_asset_ids:
            found = await assets_db.kinds(self.store, asset_ids=request.input_asset_ids)
            missing = [a for a in request.input_asset_ids if a not in found]
            if missing:
                raise NotFound(f"No asset with id '{missing[0]}'.")
            if any(kind != "image" for kind in found.values()):
                raise AtelierError("Only images can be used as references.", code="invalid_request", status=422)
            await self._check_sees_images(request.kind, request.model)
        refusal = await send_refusal(store=self.store, policy=None, preferences=self.preferences,
                                     model=request.model)
        if refusal is not None:
            raise refusal
        limit = self.settings.outbox_max_queued
        if policy is not None and policy.get("outbox_max_queued") is not None:
            limit = policy.value("outbox_max_queued")
        backlog = await self.outbox.backlog()
        if backlog >= limit:
            raise AtelierError(f"The outbox already holds {backlog} requests (the limit is {limit}). Wait for some "
                               "to go out or cancel a few.", code="outbox_full", status=429)
        if await self.keys.get() is None and not request.defer:  # cached
            raise AtelierError("No OpenRouter key is set. Paste your key in Settings (or send with defer to queue "
                               "it until a key is set).", code="no_api_key")

    async def _check_sees_images(self, kind: str, model: str) -> None:
        """Images sent to a model the catalogue says reads only text → 422 ``model_cannot_see_images``. A model
        the catalogue does not know is let through (OpenRouter then decides). Video frames are not "seen" this
        way (the video models list their frame support instead), so video is not checked here."""
        if kind == "video" or self.catalogue is None or await self.catalogue.sees_images(model) is not False:
            return
        raise AtelierError(f"The model '{model}' cannot see images. Pick a model that reads images, or remove the "
                           "images before sending.", code="model_cannot_see_images", status=422)

    async def admit(self, request: GenerationRequest) -> tuple[dict[str, Any], bool]:
        """Check and insert. Returns the row as written and whether its first attempt starts now (it is then
        inserted ``running`` with that attempt recorded)."""
        await self.check(request)
        placement = await place(self.store, kind=request.kind, conversation_id=request.conversation_id,
                                parent_id=request.parent_id, sibling_of=request.sibling_of)
        # A turn whose parent has not finished waits in the queue (docs/outbox.md, "Conversations").
        start_now = not (request.defer or self.outbox.paused or placement.waits)
        row = await gens.insert(
            self.store, kind=request.kind, model=request.model, prompt=request.prompt, system=request.system,
            params=request.params, input_asset_ids=request.input_asset_ids, stream=request.stream,
            tags=request.tags, title=request.title, start_now=start_now, template_id=request.template_id,
            variables=request.variables, conversation_id=placement.conversation_id,
            parent_id=placement.parent_id, new_conversation=placement.new_conversation,
        )
        row["parent_status"] = placement.parent_status
        self.outbox.added()
        self.outbox.activity()  # a new request: while offline, probe now rather than at the next interval
        return row, start_now
