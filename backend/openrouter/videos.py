"""Video jobs and file downloads: submit a job, poll it, fetch its file (docs/openrouter.md, "Video")."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator

import httpx

from backend.openrouter.classification import error_from_http, in_band_error
from backend.openrouter.connection import MAX_ERROR_BODY, Connection, read_capped
from backend.openrouter.errors import UpstreamError, too_large, transport_error, unexpected_answer
from backend.openrouter.results import as_int

__all__ = ["Videos"]

_MAX_DOWNLOAD_REDIRECTS = 5


class Videos:
    """``POST /videos``, ``GET /videos/{id}`` (or its ``polling_url``), and downloads of the files."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def submit_video(self, api_key: str, body: dict) -> dict:
        """``POST /videos``: start a video job; returns ``{"id", "polling_url", "status", …}`` (with
        ``generation_id`` from the ``X-Generation-Id`` header when OpenRouter sends one)."""
        model = body.get("model") if isinstance(body.get("model"), str) else None
        response, payload = await self._connection.json_call(
            "POST", "videos", api_key, context="video_submit", json_body=body, model=model, ok=(200, 201, 202)
        )
        if isinstance(payload, dict) and "error" in payload and "id" not in payload:
            raise in_band_error(
                payload["error"], model=model, context="video_submit", output_started=False
            ).scrubbed(api_key)
        if not isinstance(payload, dict) or not isinstance(payload.get("id"), str) or not payload["id"]:
            # The job may exist upstream, but without its id it cannot be followed.
            error = unexpected_answer(200, "no job id")
            error.disposition = "unknown"
            raise error.scrubbed(api_key)
        if not payload.get("generation_id") and response.headers.get("x-generation-id"):
            # The generation id names the job in the user's OpenRouter activity, even before it finishes.
            payload["generation_id"] = response.headers["x-generation-id"]
        return payload

    async def get_video(self, api_key: str, job_id: str, polling_url: str | None = None) -> dict:
        """Poll a video job. ``polling_url`` may be absolute or relative to the OpenRouter origin; without
        it, ``/videos/<job_id>`` is used. The key is sent only when the URL is on the OpenRouter origin."""
        target = polling_url or "videos/" + urllib.parse.quote(job_id, safe="")
        _, payload = await self._connection.json_call("GET", target, api_key, context="video_poll")
        if not isinstance(payload, dict) or not isinstance(payload.get("status"), str):
            raise unexpected_answer(200, "no job status").scrubbed(api_key)
        return payload

    async def download(self, api_key: str, url: str, *, max_bytes: int) -> AsyncIterator[bytes]:
        """Stream a file (a video's ``unsigned_urls`` entry, …) in chunks.

        Redirects are followed here (storage links often redirect), at most a few, only to http(s), never
        from https to http, and the key is dropped as soon as the URL leaves the OpenRouter origin. Raises
        UpstreamError when the file is larger than ``max_bytes``.
        """
        connection = self._connection
        current = connection.url(url)
        for _ in range(_MAX_DOWNLOAD_REDIRECTS + 1):
            response = await connection.send(
                "GET",
                current,
                api_key,
                stream=True,
                accept="*/*",
                timeout=connection.stream_timeout,
                idempotent=True,
            )
            error: UpstreamError | None = None
            try:
                if response.is_redirect and "location" in response.headers:
                    next_url = current.join(response.headers["location"])
                    if next_url.scheme not in ("http", "https") or (
                        current.scheme == "https" and next_url.scheme == "http"
                    ):
                        error = UpstreamError(
                            "upstream_error",
                            "reject",
                            "The download link redirected to an address Atelier does not open.",
                            upstream_status=response.status_code,
                        )
                    else:
                        current = next_url
                        continue
                elif response.status_code != 200:
                    body = await read_capped(response, MAX_ERROR_BODY)
                    error = error_from_http(
                        response.status_code, response.headers, body, model=None, context="video_poll"
                    )
                else:
                    declared = as_int(response.headers.get("content-length"))
                    if declared is not None and declared > max_bytes:
                        error = too_large(max_bytes)
                    else:
                        received = 0
                        try:
                            async for chunk in response.aiter_bytes():
                                received += len(chunk)
                                if received > max_bytes:
                                    error = too_large(max_bytes)
                                    break
                                yield chunk
                        except httpx.TransportError as exc:
                            error = transport_error(
                                exc, sent=True, idempotent=True, timeout=connection.stream_idle_timeout
                            )
                        if error is None:
                            return
            finally:
                await response.aclose()
            if error is not None:
                raise error.scrubbed(api_key)
        raise UpstreamError(
            "upstream_error", "reject", "The download link redirected too many times; it was not followed."
        )
