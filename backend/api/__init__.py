"""Thin routers, one per resource. :func:`register_routers` mounts the resource routers under /api/v1."""

from __future__ import annotations

from fastapi import FastAPI


def register_routers(app: FastAPI) -> None:
    """Mount every resource router (the system router is mounted by the app factory)."""
    from importlib import import_module

    for name in ROUTERS:
        module = import_module(f"{__name__}.{name}")
        app.include_router(module.router, prefix="/api/v1")


# Resource routers, in the order they appear in the OpenAPI document.
ROUTERS: list[str] = [
    "generations", "batches", "collections", "templates", "queue", "credentials", "models", "usage", "assets", "data",
    "backups", "diagnostics",
    "conversations",
]
