"""Annotated dependency aliases, so router signatures read as intent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.db.store import Store


def _store(request: Request) -> Store:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _preferences(request: Request) -> Preferences:
    return request.app.state.preferences


def _state(request: Request) -> Any:
    return request.app.state


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PreferencesDep = Annotated[Preferences, Depends(_preferences)]
StateDep = Annotated[Any, Depends(_state)]
