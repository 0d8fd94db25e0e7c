"""The one module the UI calls the Atelier backend through: one method per endpoint of ``/api/v1``.

The connection, the launch token, timeouts and errors (:class:`BackendError`, :class:`BackendUnavailable`) are
in ``backend_http.py``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from frontend.backend_http import (
    GENERATION_TIMEOUT,
    BackendError,
    BackendHttp,
    BackendUnavailable,
    segment,
)

__all__ = ["BackendClient", "BackendError", "BackendUnavailable"]


class BackendClient(BackendHttp):
    """A small synchronous client for the backend's local API. Thread-safe (one ``httpx.Client``)."""

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
        return self.request("GET", f"/generations/{segment(generation_id)}")

    def create_generation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /generations`` (not streamed); may take as long as the model does."""
        return self.request("POST", "/generations", json=dict(body), timeout=GENERATION_TIMEOUT)

    def update_generation(self, generation_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /generations/{id}`` (tags, favorite, title)."""
        return self.request("PATCH", f"/generations/{segment(generation_id)}", json=dict(changes))

    def delete_generation(self, generation_id: str) -> None:
        """``DELETE /generations/{id}`` with its files."""
        self.request("DELETE", f"/generations/{segment(generation_id)}")

    def retry_generation(self, generation_id: str) -> dict[str, Any]:
        """``POST /generations/{id}/retry``."""
        return self.request("POST", f"/generations/{segment(generation_id)}/retry")

    def cancel_generation(self, generation_id: str) -> dict[str, Any]:
        """``POST /generations/{id}/cancel``."""
        return self.request("POST", f"/generations/{segment(generation_id)}/cancel")

    # -- conversations ------------------------------------------------------------------------------

    def conversations(self, **filters: Any) -> dict[str, Any]:
        """``GET /conversations`` with q/limit/cursor: ``{"items", "next_cursor"}``, by last activity."""
        return self.request("GET", "/conversations", params=filters)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """``GET /conversations/{id}``: ``{"id", "title", "turns", "leaf_id", ...}``."""
        return self.request("GET", f"/conversations/{segment(conversation_id)}")

    def rename_conversation(self, conversation_id: str, title: str | None) -> dict[str, Any]:
        """``PATCH /conversations/{id}`` (title; None goes back to the first prompt)."""
        return self.request("PATCH", f"/conversations/{segment(conversation_id)}", json={"title": title})

    def delete_conversation(self, conversation_id: str) -> None:
        """``DELETE /conversations/{id}``: every turn with its files."""
        self.request("DELETE", f"/conversations/{segment(conversation_id)}")

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
            "GET", f"/generations/{segment(generation_id)}/events", headers={"Accept": "text/event-stream"}
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
        return self.open_stream("GET", f"/assets/{segment(asset_id)}", headers=headers, params=params or None)

    def upload_asset(self, data: bytes, mime: str) -> dict[str, Any]:
        """``POST /assets`` with raw image bytes → the asset record of a reference image."""
        return self.request("POST", "/assets", content=data, headers={"Content-Type": mime},
                            timeout=GENERATION_TIMEOUT)

    def diagnostics(self) -> dict[str, Any]:
        """``GET /diagnostics``: ``{"ok", "version", "checks": [{"name", "status", "detail", "fix"}]}``."""
        return self.request("GET", "/diagnostics", timeout=60.0)

    # -- templates --------------------------------------------------------------------------------

    def templates(self, **filters: Any) -> dict[str, Any]:
        """``GET /templates``: ``{"items", "next_cursor"}``, newest first."""
        return self.request("GET", "/templates", params=filters)

    def template(self, template_id: str) -> dict[str, Any]:
        return self.request("GET", f"/templates/{segment(template_id)}")

    def create_template(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/templates", json=dict(body))

    def replace_template(self, template_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/templates/{segment(template_id)}", json=dict(body))

    def delete_template(self, template_id: str) -> None:
        self.request("DELETE", f"/templates/{segment(template_id)}")

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
        return self.request("GET", f"/batches/{segment(batch_id)}", params=filters)

    def create_batch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/batches", json=dict(body), timeout=GENERATION_TIMEOUT)

    def batch_action(self, batch_id: str, action: str) -> dict[str, Any]:
        """``POST /batches/{id}/pause|resume|cancel``."""
        return self.request("POST", f"/batches/{segment(batch_id)}/{segment(action)}")

    # -- your data: exports, imports, backups --------------------------------------------------------

    def exports(self) -> dict[str, Any]:
        return self.request("GET", "/exports")

    def create_export(self, fmt: str, selection: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``POST /exports``; a large library takes a while, so the read timeout is a generation's."""
        body = {"format": fmt, "filter": dict(selection or {})}
        return self.request("POST", "/exports", json=body, timeout=GENERATION_TIMEOUT)

    def import_export(self, chunks: Iterator[bytes], length: int | None) -> dict[str, Any]:
        """``POST /imports`` with the zip streamed from ``chunks``."""
        return self._send_body("POST", "/imports", chunks, length)

    def start_import_upload(self) -> dict[str, Any]:
        """``POST /imports/uploads``: an import sent in chunks (docs/data.md, "Imports")."""
        return self.request("POST", "/imports/uploads")

    def send_import_chunk(self, upload_id: str, offset: int, chunks: Iterator[bytes],
                          length: int | None) -> dict[str, Any]:
        """``PUT /imports/uploads/{id}?offset=`` with one chunk streamed from ``chunks``."""
        return self._send_body("PUT", f"/imports/uploads/{segment(upload_id)}", chunks, length,
                               params={"offset": offset})

    def finish_import_upload(self, upload_id: str) -> dict[str, Any]:
        """``POST /imports/uploads/{id}/finish``: import what the chunks made."""
        return self.request("POST", f"/imports/uploads/{segment(upload_id)}/finish", timeout=GENERATION_TIMEOUT)

    def cancel_import_upload(self, upload_id: str) -> None:
        self.request("DELETE", f"/imports/uploads/{segment(upload_id)}")

    def _send_body(self, method: str, path: str, chunks: Iterator[bytes], length: int | None,
                   params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A raw body streamed from ``chunks`` (an export zip, or a piece of one); the JSON answer."""
        headers = {"Content-Type": "application/zip"}
        if length is not None:
            headers["Content-Length"] = str(length)
        return self.request(method, path, content=chunks, headers=headers, params=params,
                            timeout=GENERATION_TIMEOUT)

    def backups(self) -> dict[str, Any]:
        return self.request("GET", "/backups")

    def make_backup(self) -> dict[str, Any]:
        return self.request("POST", "/backups", timeout=GENERATION_TIMEOUT)

    def restore_backup(self, backup_id: str) -> dict[str, Any]:
        return self.request("POST", f"/backups/{segment(backup_id)}/restore", timeout=GENERATION_TIMEOUT)

    # -- collections, bulk actions and tags (the Library) ----------------------------------------------------
    def collections(self) -> dict[str, Any]:
        return self.request("GET", "/collections", params={"limit": 200})

    def create_collection(self, name: str) -> dict[str, Any]:
        return self.request("POST", "/collections", json={"name": name})

    def rename_collection(self, collection_id: str, name: str) -> dict[str, Any]:
        return self.request("PATCH", f"/collections/{segment(collection_id)}", json={"name": name})

    def delete_collection(self, collection_id: str) -> None:
        self.request("DELETE", f"/collections/{segment(collection_id)}")

    def bulk(self, ids: list[str], action: str, value: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"ids": ids, "action": action}
        if value is not None:
            body["value"] = value
        return self.request("POST", "/generations/bulk", json=body)

    def tags(self, q: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/tags", params={"q": q} if q else None)
