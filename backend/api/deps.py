"""Annotated dependency aliases, so router signatures read as intent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from backend.app import Shell
from backend.core.policy import Policy
from backend.core.preferences import Preferences
from backend.core.settings import Settings
from backend.data.uploads import UploadSessions
from backend.db.store import Store
from backend.keys.credentials import Credentials
from backend.keys.oauth import OAuthFlows
from backend.media.store import MediaStore
from backend.openrouter import OpenRouterClient
from backend.outbox.connectivity import Connectivity
from backend.outbox.worker import Outbox
from backend.services.admission import Admission
from backend.services.batches import Batches
from backend.services.catalogue import Catalogue
from backend.services.library import Library


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


def _batches(request: Request) -> Batches:
    return request.app.state.batches


def _media(request: Request) -> MediaStore:
    return request.app.state.media


def _connectivity(request: Request) -> Connectivity:
    return request.app.state.connectivity


def _keys(request: Request) -> Credentials:
    return request.app.state.keys


def _catalogue(request: Request) -> Catalogue:
    return request.app.state.catalogue


def _client(request: Request) -> OpenRouterClient:
    return request.app.state.client


def _oauth(request: Request) -> OAuthFlows:
    return request.app.state.oauth


def _shell(request: Request) -> Shell:
    return request.app.state.shell


def _library(request: Request) -> Library:
    return request.app.state.library


def _uploads(request: Request) -> UploadSessions:
    return request.app.state.uploads


def _state(request: Request) -> Any:
    return request.app.state


StoreDep = Annotated[Store, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
PreferencesDep = Annotated[Preferences, Depends(_preferences)]
PolicyDep = Annotated[Policy | None, Depends(_policy)]
OutboxDep = Annotated[Outbox, Depends(_outbox)]
AdmissionDep = Annotated[Admission, Depends(_admission)]
BatchesDep = Annotated[Batches, Depends(_batches)]
MediaDep = Annotated[MediaStore, Depends(_media)]
ConnectivityDep = Annotated[Connectivity, Depends(_connectivity)]
KeysDep = Annotated[Credentials, Depends(_keys)]
CatalogueDep = Annotated[Catalogue, Depends(_catalogue)]
ClientDep = Annotated[OpenRouterClient, Depends(_client)]
OAuthDep = Annotated[OAuthFlows, Depends(_oauth)]
ShellDep = Annotated[Shell, Depends(_shell)]
LibraryDep = Annotated[Library, Depends(_library)]
UploadsDep = Annotated[UploadSessions, Depends(_uploads)]
#: The whole app state, for diagnostics (it reports on everything).
StateDep = Annotated[Any, Depends(_state)]
