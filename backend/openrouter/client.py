"""The OpenRouter client: the only code in Atelier that talks to OpenRouter.

:class:`OpenRouterClient` is what the rest of the app holds; it is composed of four parts, one module each:

- ``connection.py``  the connection pool, URLs, headers, sending, HTTP statuses as errors, and the security
  rules on the key, redirects and TLS (docs/security.md, "The API key");
- ``account.py``     reachability, the key's details, the OAuth code exchange, the model lists;
- ``chat.py``        chat completions, streamed or not, with their size caps;
- ``videos.py``      video jobs and file downloads.

Everything that can go wrong on the wire is turned into one exception type, :class:`UpstreamError`
(``errors.py``; OpenRouter's own error answers are read in ``classification.py``).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx

from backend.core.settings import DEFAULT_BASE_URL
from backend.openrouter.account import Account
from backend.openrouter.chat import Chat
from backend.openrouter.connection import Connection
from backend.openrouter.results import ChatResult, Modality, StreamEvent
from backend.openrouter.videos import Videos

__all__ = ["OpenRouterClient"]


class OpenRouterClient:
    """An async OpenRouter client with one connection pool for its whole life; close it with ``aclose()``.

    ``transport`` replaces the network: every request goes through it (an ``httpx.MockTransport`` in tests,
    for example), and ``proxy`` / ``ssl_context`` must then be left unset, since they configure the default
    transport only.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        connect_timeout: float = 15,
        read_timeout: float = 600,
        stream_idle_timeout: float = 180,
        proxy: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        app_url: str = "https://github.com/atelier-studio/atelier",
        app_title: str = "Atelier",
        categories: str = "creative-writing,image-gen",
        max_answer_bytes: int = 8 * 2**20,
        max_media_bytes: int = 200 * 2**20,
    ) -> None:
        self._connection = Connection(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            stream_idle_timeout=stream_idle_timeout,
            proxy=proxy,
            ssl_context=ssl_context,
            transport=transport,
            headers={
                "HTTP-Referer": app_url,
                "X-OpenRouter-Title": app_title,
                "X-Title": app_title,
                "X-OpenRouter-Categories": categories,
                "User-Agent": f"{app_title} ({app_url})",
            },
        )
        self._account = Account(self._connection)
        self._chat = Chat(self._connection, max_answer_bytes=max_answer_bytes, max_media_bytes=max_media_bytes)
        self._videos = Videos(self._connection)

    @property
    def base_url(self) -> str:
        """The API base URL (no trailing slash)."""
        return self._connection.base_url

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._connection.aclose()

    async def __aenter__(self) -> OpenRouterClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ---- account and catalogue (account.py) ----

    async def probe(self) -> bool:
        """Is OpenRouter reachable? See :meth:`Account.probe`."""
        return await self._account.probe()

    async def get_key_info(self, api_key: str) -> dict:
        """``GET /key``: see :meth:`Account.get_key_info`."""
        return await self._account.get_key_info(api_key)

    async def get_json(self, path: str, api_key: str, *, params: dict | None = None, context: str) -> Any:
        """``GET`` an API path (relative to the base URL) and return its JSON answer; errors as for any call.
        Used by small endpoint modules (``stats.py``) so this class stays the only one holding the connection."""
        _, payload = await self._connection.json_call("GET", path, api_key, params=params, context=context)
        return payload

    async def exchange_oauth_code(self, code: str, verifier: str) -> str:
        """``POST /auth/keys``: see :meth:`Account.exchange_oauth_code`."""
        return await self._account.exchange_oauth_code(code, verifier)

    async def list_models(self, output: str = Modality.TEXT, api_key: str | None = None) -> list[dict]:
        """``GET /models``: see :meth:`Account.list_models`."""
        return await self._account.list_models(output, api_key)

    async def video_models(self, api_key: str | None = None) -> list[dict]:
        """``GET /videos/models``: see :meth:`Account.video_models`."""
        return await self._account.video_models(api_key)

    # ---- chat (chat.py) ----

    async def chat(self, api_key: str, body: dict) -> ChatResult:
        """A non-streamed chat completion: see :meth:`Chat.chat`."""
        return await self._chat.chat(api_key, body)

    def chat_stream(self, api_key: str, body: dict) -> AsyncGenerator[StreamEvent, None]:
        """A streamed chat completion as an async generator of events: see :meth:`Chat.chat_stream`."""
        return self._chat.chat_stream(api_key, body)

    # ---- video (videos.py) ----

    async def submit_video(self, api_key: str, body: dict) -> dict:
        """``POST /videos``: see :meth:`Videos.submit_video`."""
        return await self._videos.submit_video(api_key, body)

    async def get_video(self, api_key: str, job_id: str, polling_url: str | None = None) -> dict:
        """Poll a video job: see :meth:`Videos.get_video`."""
        return await self._videos.get_video(api_key, job_id, polling_url)

    def download(self, api_key: str, url: str, *, max_bytes: int) -> AsyncIterator[bytes]:
        """Stream a file in chunks, following safe redirects: see :meth:`Videos.download`."""
        return self._videos.download(api_key, url, max_bytes=max_bytes)
