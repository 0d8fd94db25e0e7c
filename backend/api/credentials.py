"""``/credentials``: the OpenRouter key (never returned; only its last four characters)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from backend.api.deps import ClientDep, KeysDep, OAuthDep, OutboxDep
from backend.core.errors import AtelierError, LockedByPolicy
from backend.keys.keystore import KeyStoreError, validate_key
from backend.openrouter import UpstreamError

router = APIRouter(tags=["credentials"])


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=1024)


@router.get("/credentials")
async def get_credentials(keys: KeysDep) -> dict[str, Any]:
    return await keys.describe()


@router.put("/credentials")
async def put_credentials(body: KeyIn, keys: KeysDep, outbox: OutboxDep) -> dict[str, Any]:
    """Validate the key with OpenRouter (when reachable) and store it in the OS keychain or a private file."""
    try:
        # Checked before anything is sent: a key with spaces or non-ASCII characters cannot even travel in
        # an Authorization header.
        api_key = validate_key(body.api_key)
    except KeyStoreError as exc:
        raise AtelierError(exc.message, code="invalid_key") from None
    described = await keys.set(api_key)
    outbox.wake()  # deferred requests waiting for a key can go now
    return described


class OAuthStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    callback_base: str = Field(min_length=1, max_length=300)


class OAuthFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str = Field(min_length=1, max_length=100)
    code: str = Field(min_length=1, max_length=500)


@router.post("/credentials/oauth/start")
async def oauth_start(body: OAuthStart, keys: KeysDep, oauth: OAuthDep, client: ClientDep) -> dict[str, Any]:
    """Begin "Sign in with OpenRouter": returns the consent URL to open in the system browser. After consent
    the browser returns to ``<callback_base>/<state>?code=…``, whose handler calls ``/credentials/oauth/finish``."""
    if not keys.user_key_allowed:
        raise LockedByPolicy("Your organisation provides the OpenRouter key; signing in is turned off.",
                             setting="api_key")
    flow_state, url = oauth.start(client.base_url, body.callback_base)
    return {"state": flow_state, "auth_url": url}


@router.post("/credentials/oauth/finish")
async def oauth_finish(body: OAuthFinish, keys: KeysDep, oauth: OAuthDep, client: ClientDep,
                       outbox: OutboxDep) -> dict[str, Any]:
    """Exchange the code for a key (PKCE) and store it like a pasted key."""
    verifier = oauth.take(body.state)
    try:
        key = await client.exchange_oauth_code(body.code, verifier)
    except UpstreamError as exc:
        if exc.disposition == "reject":
            raise AtelierError("OpenRouter did not accept the sign-in (the code expired or was already used). "
                               "Start again from Settings.", code="oauth_failed",
                               upstream_status=exc.upstream_status) from None
        raise AtelierError("OpenRouter cannot be reached to finish signing in. Try again when you are online.",
                           code="upstream_unavailable", status=502) from None
    described = await keys.set(key)
    outbox.wake()
    return described


@router.delete("/credentials")
async def delete_credentials(keys: KeysDep) -> dict[str, Any]:
    return await keys.delete()
