"""Where the OpenRouter API key lives.

Precedence when reading: machine policy > ``OPENROUTER_API_KEY`` > the OS keychain > a private file.

The keychain and the private file themselves are in ``storage.py``. When no usable keychain exists the key
goes to ``<data_dir>/secrets/openrouter.key`` (mode 0600, folder 0700), and ``KeyStatus.storage_note`` says so,
so the UI can tell the user.

The key never appears in an exception message, a ``repr`` or a log line: errors name the problem and the fix,
and third-party error texts are scrubbed of the key before they are shown.

Everything here is synchronous; the backend calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from backend.keys.storage import (
    KEY_FILE_NAME,
    MAX_KEY_LENGTH,
    MIN_KEY_LENGTH,
    SECRETS_DIR_NAME,
    Keychain,
    KeyFile,
    KeyStoreError,
)

log = logging.getLogger(__name__)

ENV_VAR = "OPENROUTER_API_KEY"
# Printable ASCII without space: what every bearer token we know of is made of.
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True)
class KeyStatus:
    """What the UI may know about the key: never the key itself."""

    configured: bool
    source: str | None  # "policy" | "env" | "keyring" | "file" | None
    hint: str | None  # "…abcd": the last four characters only
    storage_note: str | None  # a sentence for the settings screen, or None


class _Secret:
    """Holds a secret so that ``repr``/``vars``/debuggers print a placeholder instead of it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>"

    __str__ = __repr__


class _EnvView:
    """Read access to the environment mapping, with a ``repr`` that cannot print the key it may hold."""

    __slots__ = ("_env",)

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str) -> str | None:
        return self._env.get(name)

    def __repr__(self) -> str:
        return "<environment>"


def key_hint(key: str) -> str:
    """The only part of a key the UI may show: an ellipsis and its last four characters."""
    return "…" + key[-4:]


def validate_key(key: str) -> str:
    """Return the key without surrounding whitespace, or raise ``KeyStoreError`` if it is not key-shaped.

    Surrounding whitespace (a pasted trailing newline) is forgiven; whitespace inside is not.
    """
    if not isinstance(key, str):
        raise KeyStoreError("The API key must be text.", code="invalid_key")
    key = key.strip()
    if not key:
        raise KeyStoreError(
            "The API key is empty. Paste the key from openrouter.ai/keys.", code="invalid_key"
        )
    if len(key) < MIN_KEY_LENGTH or len(key) > MAX_KEY_LENGTH:
        raise KeyStoreError(
            f"That does not look like an API key (it should be {MIN_KEY_LENGTH}–{MAX_KEY_LENGTH} characters"
            f" long). Copy the whole key from openrouter.ai/keys and paste it again.",
            code="invalid_key",
        )
    if not _KEY_SHAPE.fullmatch(key):
        raise KeyStoreError(
            "The API key contains spaces, line breaks or unusual characters. Copy the key again from"
            " openrouter.ai/keys, making sure nothing else is included.",
            code="invalid_key",
        )
    return key


class KeyStore:
    """Reads, stores and deletes the OpenRouter API key.

    ``backend`` is ``"auto"`` (the OS keychain when usable, else the private file), ``"file"``, or
    ``"module:Class"`` naming a ``keyring.backend.KeyringBackend`` subclass (IT and tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        backend: str = "auto",
        env: Mapping[str, str] = os.environ,
        policy_key: str | None = None,
        service: str = "Atelier",
        username: str = "openrouter",
    ) -> None:
        backend = (backend or "auto").strip()
        self._data_dir = Path(data_dir)
        self._backend_spec = backend
        self._env = _EnvView(env)
        self._policy = _Secret(policy_key.strip()) if policy_key and policy_key.strip() else None
        self._keychain = Keychain(backend, service=service, username=username, hidden=self._policy_key)
        self._file = KeyFile(self.key_path)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"KeyStore(backend={self._backend_spec!r}, data_dir={str(self._data_dir)!r})"

    def _policy_key(self) -> str | None:
        return self._policy.reveal() if self._policy else None

    # ----------------------------------------------------------------- public API

    @property
    def key_path(self) -> Path:
        """The private file used when no keychain is available."""
        return self._data_dir / SECRETS_DIR_NAME / KEY_FILE_NAME

    @property
    def backend_name(self) -> str:
        """Storage used for writes (diagnostics): "SecretService", "WinVault", "macOS Keychain", "file"…"""
        return self._keychain.name

    def get(self) -> str | None:
        """The key in effect, or None. Raises ``KeyStoreError`` if the keychain cannot be read (locked)."""
        found = self._lookup()
        return found[1] if found else None

    def status(self) -> KeyStatus:
        """Where the key comes from and its last four characters. Never raises for a locked keychain:
        the problem is reported in ``storage_note``."""
        try:
            found = self._lookup()
        except KeyStoreError as exc:
            return KeyStatus(configured=False, source=None, hint=None, storage_note=exc.message)
        return self._status_for(found)

    def set(self, key: str) -> KeyStatus:
        """Validate and store the key in the keychain (or the private file). Refused when the key in effect
        comes from the environment or machine policy, which this app cannot change."""
        key = validate_key(key)
        with self._lock:
            self._refuse_if_read_only("replace")
            if self._keychain.usable:
                self._keychain.set(key)
                # A key left in the fallback file would shadow nothing but still sit on disk: remove it.
                self._file.remove()
            else:
                self._file.write(key)
            log.info("API key saved (%s)", self._keychain.name)
        return self.status()

    def delete(self) -> KeyStatus:
        """Remove the key from the keychain and the file. A key from the environment or policy stays in effect
        and the returned status says so."""
        with self._lock:
            if self._keychain.usable:
                self._keychain.delete()
            self._file.remove()
            log.info("API key removed from %s", self._keychain.name)
        status = self.status()
        if status.source in ("env", "policy"):
            note = (
                f"The saved key was removed, but the key from the {ENV_VAR} environment variable is still in"
                " use. Remove that variable to stop using it."
                if status.source == "env"
                else "The saved key was removed, but the key set by your organization's policy is still"
                " in use."
            )
            status = KeyStatus(status.configured, status.source, status.hint, note)
        return status

    # ----------------------------------------------------------------- lookup

    def _env_key(self) -> str | None:
        value = self._env.get(ENV_VAR)
        value = value.strip() if value else ""
        return value or None

    def _lookup(self) -> tuple[str, str] | None:
        """(source, key) of the key in effect, following the precedence order."""
        if self._policy is not None:
            return ("policy", self._policy.reveal())
        env_key = self._env_key()
        if env_key:
            return ("env", env_key)
        with self._lock:
            if self._keychain.usable:
                stored = self._keychain.get()
                if stored:
                    return ("keyring", stored)
            stored = self._file.read()
            if stored:
                return ("file", stored)
        return None

    def _status_for(self, found: tuple[str, str] | None) -> KeyStatus:
        if found is None:
            return KeyStatus(configured=False, source=None, hint=None, storage_note=self._write_note())
        source, key = found
        if source == "policy":
            note = "This key is set by your organization's policy and cannot be changed here."
        elif source == "env":
            note = (
                f"This key comes from the {ENV_VAR} environment variable and cannot be changed here."
                " Change or remove the variable instead."
            )
        elif source == "keyring":
            note = f"The key is stored in the system keychain ({self._keychain.name})."
        else:
            note = self._file_note()
        return KeyStatus(configured=True, source=source, hint=key_hint(key), storage_note=note)

    def _file_note(self) -> str:
        note = (
            "No system keychain was found, so the key is stored in a private file"
            f" ({self.key_path}, readable only by you)."
        )
        if self._keychain.usable:
            # The keychain exists but this key predates it (or was saved while it was unavailable).
            note = f"The key is stored in a private file ({self.key_path}, readable only by you)."
        return note

    def _write_note(self) -> str | None:
        """Where a new key would go, so the settings screen can say it before the user pastes one."""
        if self._keychain.usable:
            return f"A new key will be stored in the system keychain ({self._keychain.name})."
        note = (
            "No system keychain was found, so a new key will be stored in a private file"
            f" ({self.key_path}, readable only by you)."
        )
        if self._keychain.fallback_reason:
            note += f" ({self._keychain.fallback_reason})"
        return note

    def _refuse_if_read_only(self, verb: str) -> None:
        if self._policy is not None:
            raise KeyStoreError(
                f"The API key is set by your organization's policy; it cannot be {verb}d here."
                " Ask your IT administrator to change it.",
                code="read_only",
            )
        if self._env_key():
            raise KeyStoreError(
                f"The API key comes from the {ENV_VAR} environment variable, so it cannot be {verb}d here."
                f" Change the variable, or remove it to manage the key in Atelier.",
                code="read_only",
            )


__all__ = ["ENV_VAR", "KeyStatus", "KeyStore", "KeyStoreError", "key_hint", "validate_key"]
