"""Fakes of external services used by the tests, benchmarks and browser tests.

``from tests.fakes import FakeOpenRouter`` — see ``tests/fakes/openrouter.py`` for what it does and
``tests/fakes/behaviours.py`` for the scripted behaviours. ``FakeOpenRouter`` is imported lazily so that
``python -m tests.fakes.openrouter`` does not import the module twice.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.behaviours import (
    PRESETS,
    Behaviour,
    Body200Error,
    ChoiceError,
    EmptyChoices,
    EmptyContent,
    HttpError,
    PrimaryFails,
    Reply,
    Stall,
    StreamError,
    StreamStyle,
    Truncate,
    VideoJob,
)

__all__ = [
    "DEFAULT_KEY",
    "PRESETS",
    "Behaviour",
    "Body200Error",
    "ChoiceError",
    "EmptyChoices",
    "EmptyContent",
    "FakeOpenRouter",
    "HttpError",
    "PrimaryFails",
    "Reply",
    "Stall",
    "StreamError",
    "StreamStyle",
    "Truncate",
    "VideoJob",
]


def __getattr__(name: str) -> Any:
    if name in {"FakeOpenRouter", "DEFAULT_KEY", "RecordedRequest", "Completion", "ReceivedMedia"}:
        from tests.fakes import openrouter

        return getattr(openrouter, name)
    raise AttributeError(name)
