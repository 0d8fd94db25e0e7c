"""Account and catalogue calls: reachability, the key's details, the OAuth code exchange, the model lists."""

from __future__ import annotations

from backend.openrouter.answers import data_list
from backend.openrouter.connection import Connection
from backend.openrouter.errors import unexpected_answer
from backend.openrouter.results import Modality

__all__ = ["Account"]


class Account:
    """The small JSON calls about the account and the catalogue (none of them is billed)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def probe(self) -> bool:
        """Is OpenRouter reachable? Any HTTP answer counts; connection failures and timeouts do not."""
        return await self._connection.reachable("key")

    async def get_key_info(self, api_key: str) -> dict:
        """``GET /key``: the key's ``data`` object (label, limit, usage, is_free_tier, …)."""
        _, payload = await self._connection.json_call("GET", "key", api_key, context="key")
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, dict):
            raise unexpected_answer(200, "no key data").scrubbed(api_key)
        return data

    async def exchange_oauth_code(self, code: str, verifier: str) -> str:
        """``POST /auth/keys`` (PKCE, no Authorization header): the user-controlled key for ``code``."""
        _, payload = await self._connection.json_call(
            "POST", "auth/keys", None, context="oauth",
            json_body={"code": code, "code_verifier": verifier, "code_challenge_method": "S256"},
        )
        key = payload.get("key") if isinstance(payload, dict) else None
        if not isinstance(key, str) or not key:
            raise unexpected_answer(200, "no key in the sign-in answer")
        return key

    async def list_models(self, output: str = Modality.TEXT, api_key: str | None = None) -> list[dict]:
        """``GET /models?output_modalities=<output>``: the model catalogue entries."""
        _, payload = await self._connection.json_call(
            "GET", "models", api_key, context="models", params={"output_modalities": output}
        )
        return data_list(payload, api_key)

    async def video_models(self, api_key: str | None = None) -> list[dict]:
        """``GET /videos/models``: video models with their supported resolutions, durations, …"""
        _, payload = await self._connection.json_call("GET", "videos/models", api_key, context="models")
        return data_list(payload, api_key)
