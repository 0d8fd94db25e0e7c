"""Pytest fixtures for the fake OpenRouter; enable with ``pytest_plugins = ["tests.fakes.pytest_plugin"]``.

- ``fake_openrouter``: an in-process :class:`~tests.fakes.openrouter.FakeOpenRouter`, fresh per test.
- ``fake_openrouter_process``: the fake in a child process (for browser tests), fresh per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.openrouter import FakeOpenRouter
from tests.fakes.process import FakeOpenRouterProcess


@pytest.fixture
def fake_openrouter() -> Iterator[FakeOpenRouter]:
    """A started fake with the default key (``fake_openrouter.key``) and no delays."""
    with FakeOpenRouter() as fake:
        yield fake


@pytest.fixture
def fake_openrouter_process() -> Iterator[FakeOpenRouterProcess]:
    """The fake in its own process with one key, ``sk-or-v1-`` + 64 zeros."""
    with FakeOpenRouterProcess(keys=["sk-or-v1-" + "0" * 64]) as fake:
        yield fake
