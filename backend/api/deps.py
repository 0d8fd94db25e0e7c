"""Annotated dependency aliases, so router signatures read as intent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from backend.core.policy import Policy
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.db.store import Store
from backend.media.store import MediaStore
from backend.outbox.connectivity import Connectivity
from backend.outbox.worker import Outbox
from backend.services.admission import Admission


def _store(request: Request) -> Store:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _preferences(request: Request) -> Preferences:
    return request.app.state.preferences


def _policy(request: Request) -> Policy | None:
    return request.app.state.policy


def _outbox(request: Request) -> Outbox:
    return request.app.state.outbox


def _admission(request: Request) -> Admission:
    return request.app.state.admission


def _media(request: Request) -> MediaStore:
    return request.app.state.media


def _connectivity(request: Request) -> Connectivity:
    return request.app.state.connectivity


def _state(request: Request) -> Any:
    return request.app.state


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PreferencesDep = Annotated[Preferences, Depends(_preferences)]
PolicyDep = Annotated[Policy | None, Depends(_policy)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
AdmissionDep = Annotated[Admission, Depends(_admission)]
MediaDep = Annotated[MediaStore, Depends(_media)]
ConnectivityDep = Annotated[Connectivity, Depends(_connectivity)]
#: The whole app state, for routers not yet given typed dependencies (credentials, models, system, diagnostics).
StateDep = Annotated[Any, Depends(_state)]
