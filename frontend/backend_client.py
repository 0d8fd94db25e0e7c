"""The one module that talks to the Atelier backend (FastAPI, ``/api/v1``) over loopback HTTP.

Every call carries the launch token as a bearer token. Errors come back as :class:`BackendError`
(the backend's ``{"error": {...}}`` body, parsed) or :class:`BackendUnavailable` when the backend
cannot be reached at all, so views can tell "OpenRouter is offline" from "the engine is not running".
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

#: Loopback calls are fast; a backend that takes longer than this to accept a connection is not running.
CONNECT_TIMEOUT = 2.0
#: Ordinary JSON calls (lists, settings, status).
READ_TIMEOUT = 20.0
#: A non-streamed generation (image, or text without JavaScript) waits for the model to finish.
GENERATION_TIMEOUT = 600.0
#: Streams may idle between events while a model thinks; the backend closes them when done.
STREAM_READ_TIMEOUT = 600.0


class BackendError(Exception):
    """The backend answered with an error (``{"error": {"code", "message", ...}}``)."""

    def __init__(self, status: int, code: str, message: str, payload: Mapping[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.payload: dict[str, Any] = dict(payload or {})

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of the response (at least ``code`` and ``message``)."""
        error = self.payload.get("error")
        if isinstance(error, dict):
            return error
        return {"code": self.code, "message": self.message}

    @property
    def generation(self) -> dict[str, Any] | None:
        """The generation record some errors carry (502: queued for later; 400: kept as failed)."""
        generation = self.payload.get("generation")
        return generation if isinstance(generation, dict) else None


class BackendUnavailable(BackendError):
    """The backend could not be reached (not running, crashed, or timed out)."""

    def __init__(self, message: str):
        super().__init__(
            503,
            "backend_unreachable",
            message,
            {"error": {"code": "backend_unreachable", "message": message}},
        )


def _error_from_response(response: httpx.Response) -> BackendError:
    """Build a :class:`BackendError` from a non-2xx backend response (tolerating non-JSON bodies)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return BackendError(
            response.status_code,
            str(error.get("code") or "error"),
            str(error.get("message") or "The request failed."),
            body,
        )
    if isinstance(body, dict) and "detail" in body:  # framework-level errors (e.g. FastAPI 422)
        message = body["detail"] if isinstance(body["detail"], str) else "The request was not valid."
        return BackendError(response.status_code, "invalid_request", message, {"error": {
            "code": "invalid_request", "message": message}})
    message = f"The Atelier engine answered HTTP {response.status_code}."
    return BackendError(response.status_code, "http_error", message,
                        {"error": {"code": "http_error", "message": message}})


def _unavailable(exc: httpx.TransportError) -> BackendUnavailable:
    if isinstance(exc, httpx.TimeoutException):
        return BackendUnavailable("The Atelier engine did not answer in time. Try again.")
    return BackendUnavailable("The Atelier engine is not running. Restart Atelier to reconnect.")


def _segment(value: str) -> str:
    """Quote one path segment so an id can never change the path it is put in."""
    return quote(value, safe="")


#: Connections to the backend at most: more than the UI server's worker threads (desktop/servers.py, 128).
POOL_CONNECTIONS = 160


class BackendClient:
    """A small synchronous client for the backend's local API. Thread-safe (one ``httpx.Client``)."""

    def __init__(self, api_url: str, token: str, *, transport: httpx.BaseTransport | None = None):
        self.api_url = api_url.rstrip("/")
        self._client = httpx.Client(
            base_url=f"{self.api_url}/api/v1",
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
            transport=transport,
            trust_env=False,  # never route loopback calls through a configured HTTP proxy
            # One connection per UI worker thread (each streamed answer holds one while it streams), all kept
            # alive: with httpx's default (100, 20 kept) a page's call waited while 100 streams ran, and a
            # burst of streams reconnected to the backend each time.
            limits=httpx.Limits(max_connections=POOL_CONNECTIONS, max_keepalive_connections=POOL_CONNECTIONS),
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    # -- plumbing ---------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one JSON request and return the decoded body (``None`` for 204)."""
        clean_params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        kwargs: dict[str, Any] = {"params": clean_params}
        if json is not None:
            kwargs["json"] = json
        if timeout is not None:
            kwargs["timeout"] = httpx.Timeout(timeout, connect=CONNECT_TIMEOUT)
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise BackendError(502, "bad_response", "The Atelier engine sent an unreadable answer.") from exc

    @contextmanager
    def open_stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[httpx.Response]:
        """Open a streamed response (SSE, asset bytes). Raises :class:`BackendError` on non-2xx.

        The caller iterates ``response.iter_raw()``; the response is closed when the block exits.
        """
        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT, read=STREAM_READ_TIMEOUT)
        try:
            request = self._client.build_request(
                method, path, json=json, headers=dict(headers or {}), params=params, timeout=timeout
            )
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        try:
            if response.status_code >= 400:
                response.read()
                raise _error_from_response(response)
            yield response
        finally:
            response.close()

    # -- status, settings, credentials ------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /status``: online, key_configured, queue counts, version."""
        return self.request("GET", "/status")

    def activity(self) -> dict[str, Any]:
        """``POST /activity``: the user is here; the engine probes OpenRouter now if it was unreachable."""
        return self.request("POST", "/activity")

    def settings(self) -> dict[str, Any]:
        """``GET /settings``: ``{"values", "locked", "policy_file"}``."""
        return self.request("GET", "/settings")

    def update_settings(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /settings`` with the values to change; 403 ``locked_by_policy`` for locked ones."""
        return self.request("PUT", "/settings", json=dict(values))

    def credentials(self) -> dict[str, Any]:
        """``GET /credentials`` (never the key itself)."""
        return self.request("GET", "/credentials")

    def set_api_key(self, api_key: str) -> dict[str, Any]:
        """``PUT /credentials``; 400 ``invalid_key`` when OpenRouter rejects it."""
        return self.request("PUT", "/credentials", json={"api_key": api_key})

    def oauth_start(self, callback_base: str) -> dict[str, Any]:
        """``POST /credentials/oauth/start``: ``{"state", "auth_url"}`` for "Sign in with OpenRouter"."""
        return self.request("POST", "/credentials/oauth/start", json={"callback_base": callback_base})

    def oauth_finish(self, state: str, code: str) -> dict[str, Any]:
        """``POST /credentials/oauth/finish``: exchange the code (PKCE) and store the key."""
        return self.request("POST", "/credentials/oauth/finish", json={"state": state, "code": code}, timeout=60.0)

    def delete_api_key(self) -> dict[str, Any] | None:
        """``DELETE /credentials``."""
        return self.request("DELETE", "/credentials")

    def models(self, output: str) -> dict[str, Any]:
        """``GET /models?output=...``: ``{"items", "fetched_at", "stale"}``."""
        return self.request("GET", "/models", params={"output": output})

    def usage(self, group_by: str, **filters: Any) -> dict[str, Any]:
        """``GET /usage?group_by=...``: ``{"rows", "total_cost_usd"}``."""
        return self.request("GET", "/usage", params={"group_by": group_by, **filters})

    # -- generations --------------------------------------------------------------------------------

    def generations(self, **filters: Any) -> dict[str, Any]:
        """``GET /generations`` with q/kind/status/model/tag/favorite/limit/cursor filters."""
        return self.request("GET", "/generations", params=filters)

    def generation(self, generation_id: str) -> dict[str, Any]:
        """``GET /generations/{id}``."""
        return self.request("GET", f"/generations/{_segment(generation_id)}")

    def create_generation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /generations`` (not streamed); may take as long as the model does."""
        return self.request("POST", "/generations", json=dict(body), timeout=GENERATION_TIMEOUT)

    def update_generation(self, generation_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /generations/{id}`` (tags, favorite, title)."""
        return self.request("PATCH", f"/generations/{_segment(generation_id)}", json=dict(changes))

    def delete_generation(self, generation_id: str) -> None:
        """``DELETE /generations/{id}`` with its files."""
        self.request("DELETE", f"/generations/{_segment(generation_id)}")

    def retry_generation(self, generation_id: str) -> dict[str, Any]:
        """``POST /generations/{id}/retry``."""
        return self.request("POST", f"/generations/{_segment(generation_id)}/retry")

    def cancel_generation(self, generation_id: str) -> dict[str, Any]:
        """``POST /generations/{id}/cancel``."""
        return self.request("POST", f"/generations/{_segment(generation_id)}/cancel")

    # -- conversations ------------------------------------------------------------------------------

    def conversations(self, **filters: Any) -> dict[str, Any]:
        """``GET /conversations`` with q/limit/cursor: ``{"items", "next_cursor"}``, by last activity."""
        return self.request("GET", "/conversations", params=filters)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """``GET /conversations/{id}``: ``{"id", "title", "turns", "leaf_id", ...}``."""
        return self.request("GET", f"/conversations/{_segment(conversation_id)}")

    def rename_conversation(self, conversation_id: str, title: str | None) -> dict[str, Any]:
        """``PATCH /conversations/{id}`` (title; None goes back to the first prompt)."""
        return self.request("PATCH", f"/conversations/{_segment(conversation_id)}", json={"title": title})

    def delete_conversation(self, conversation_id: str) -> None:
        """``DELETE /conversations/{id}``: every turn with its files."""
        self.request("DELETE", f"/conversations/{_segment(conversation_id)}")

    # -- queue --------------------------------------------------------------------------------------

    def queue(self) -> dict[str, Any]:
        """``GET /queue``: ``{"items", "online", "paused"}``."""
        return self.request("GET", "/queue")

    def pause_queue(self) -> Any:
        """``POST /queue/pause``."""
        return self.request("POST", "/queue/pause")

    def resume_queue(self) -> Any:
        """``POST /queue/resume``."""
        return self.request("POST", "/queue/resume")

    # -- streams --------------------------------------------------------------------------------

    def stream_generation(self, body: Mapping[str, Any]):
        """``POST /generations`` with ``"stream": true`` → the backend's SSE response (context manager)."""
        return self.open_stream(
            "POST", "/generations", json={**body, "stream": True}, headers={"Accept": "text/event-stream"}
        )

    def generation_events(self, generation_id: str):
        """``GET /generations/{id}/events`` → SSE until a terminal status (context manager)."""
        return self.open_stream(
            "GET", f"/generations/{_segment(generation_id)}/events", headers={"Accept": "text/event-stream"}
        )

    def asset(
        self,
        asset_id: str,
        *,
        range_header: str | None = None,
        if_none_match: str | None = None,
        thumb: bool = False,
        download: bool = False,
    ):
        """``GET /assets/{id}`` streamed (context manager), forwarding ``Range`` and ``If-None-Match``.

        ``thumb`` asks for the thumbnail, ``download`` for a ``Content-Disposition: attachment`` answer.
        """
        headers = {"Accept": "*/*"}
        if range_header:
            headers["Range"] = range_header
        if if_none_match:
            headers["If-None-Match"] = if_none_match
        params = {name: "1" for name, wanted in (("thumb", thumb), ("download", download)) if wanted}
        return self.open_stream("GET", f"/assets/{_segment(asset_id)}", headers=headers, params=params or None)

    def upload_asset(self, data: bytes, mime: str) -> dict[str, Any]:
        """``POST /assets`` with raw image bytes → the asset record of a reference image."""
        try:
            response = self._client.post(
                "/assets", content=data, headers={"Content-Type": mime},
                timeout=httpx.Timeout(GENERATION_TIMEOUT, connect=CONNECT_TIMEOUT),
            )
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response.json()

    def diagnostics(self) -> dict[str, Any]:
        """``GET /diagnostics``: ``{"ok", "version", "checks": [{"name", "status", "detail", "fix"}]}``."""
        return self.request("GET", "/diagnostics", timeout=60.0)

    # -- templates --------------------------------------------------------------------------------

    def templates(self, **filters: Any) -> dict[str, Any]:
        """``GET /templates``: ``{"items", "next_cursor"}``, newest first."""
        return self.request("GET", "/templates", params=filters)

    def template(self, template_id: str) -> dict[str, Any]:
        return self.request("GET", f"/templates/{_segment(template_id)}")

    def create_template(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/templates", json=dict(body))

    def replace_template(self, template_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/templates/{_segment(template_id)}", json=dict(body))

    def delete_template(self, template_id: str) -> None:
        self.request("DELETE", f"/templates/{_segment(template_id)}")

    def preview_template(self, prompt: str, system: str | None, variables: Mapping[str, Any]) -> dict[str, Any]:
        """Render an unsaved template with sample values."""
        body = {"prompt": prompt, "system": system, "variables": dict(variables), "placeholders": True}
        return self.request("POST", "/templates/preview", json=body)

    # -- batches and compares ----------------------------------------------------------------------

    def batches(self, **filters: Any) -> dict[str, Any]:
        """``GET /batches``: ``{"items", "next_cursor"}``, newest first."""
        return self.request("GET", "/batches", params=filters)

    def batch(self, batch_id: str, **filters: Any) -> dict[str, Any]:
        """``GET /batches/{id}``: the batch with a page of its ``items`` and ``next_cursor``."""
        return self.request("GET", f"/batches/{_segment(batch_id)}", params=filters)

    def create_batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/batches", json=dict(body), timeout=GENERATION_TIMEOUT)

    def batch_action(self, batch_id: str, action: str) -> dict[str, Any]:
        """``POST /batches/{id}/pause|resume|cancel``."""
        return self.request("POST", f"/batches/{_segment(batch_id)}/{_segment(action)}")

    # -- your data: exports, imports, backups --------------------------------------------------------

    def exports(self) -> dict[str, Any]:
        return self.request("GET", "/exports")

    def create_export(self, fmt: str, selection: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /exports``; a large library takes a while, so the read timeout is a generation's."""
        body = {"format": fmt, "filter": dict(selection or {})}
        return self.request("POST", "/exports", json=body, timeout=GENERATION_TIMEOUT)

    def import_export(self, chunks: Iterator[bytes], length: int | None) -> dict[str, Any]:
        """``POST /imports`` with the zip streamed from ``chunks``."""
        headers = {"Content-Type": "application/zip"}
        if length is not None:
            headers["Content-Length"] = str(length)
        try:
            response = self._client.post("/imports", content=chunks, headers=headers,
                                         timeout=httpx.Timeout(GENERATION_TIMEOUT, connect=CONNECT_TIMEOUT))
        except httpx.TransportError as exc:
            raise _unavailable(exc) from exc
        if response.status_code >= 400:
            raise _error_from_response(response)
        return response.json()

    def backups(self) -> dict[str, Any]:
        return self.request("GET", "/backups")

    def make_backup(self) -> dict[str, Any]:
        return self.request("POST", "/backups", timeout=GENERATION_TIMEOUT)

    def restore_backup(self, backup_id: str) -> dict[str, Any]:
        return self.request("POST", f"/backups/{_segment(backup_id)}/restore", timeout=GENERATION_TIMEOUT)

    # -- collections, bulk actions and tags (the Library) ----------------------------------------------------
    def collections(self) -> dict[str, Any]:
        return self.request("GET", "/collections", params={"limit": 200})

    def create_collection(self, name: str) -> dict[str, Any]:
        return self.request("POST", "/collections", json={"name": name})

    def rename_collection(self, collection_id: str, name: str) -> dict[str, Any]:
        return self.request("PATCH", f"/collections/{_segment(collection_id)}", json={"name": name})

    def delete_collection(self, collection_id: str) -> None:
        self.request("DELETE", f"/collections/{_segment(collection_id)}")

    def bulk(self, ids: list[str], action: str, value: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ids": ids, "action": action}
        if value is not None:
            body["value"] = value
        return self.request("POST", "/generations/bulk", json=body)

    def tags(self, q: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/tags", params={"q": q} if q else None)
