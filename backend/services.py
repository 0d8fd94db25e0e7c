"""The composition root: builds the long-lived services and hangs them on ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI


async def install_services(app: FastAPI) -> Callable[[], Awaitable[None]]:
    """Start the services; return the coroutine function that stops them."""

    async def shutdown() -> None:
        return None

    return shutdown
