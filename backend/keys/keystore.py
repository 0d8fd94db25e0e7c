"""Where the OpenRouter API key lives.

Precedence when reading: machine policy > ``OPENROUTER_API_KEY`` > the OS keychain > a private file.

The keychain backend is chosen explicitly per OS (Windows Credential Manager, macOS Keychain, Secret Service)
instead of through keyring's entry-point discovery, which falls back to the ``fail`` backend in frozen apps.
When no usable keychain exists the key goes to ``<data_dir>/secrets/openrouter.key`` (mode 0600, folder 0700),
and ``KeyStatus.storage_note`` says so, so the UI can tell the user.

The key never appears in an exception message, a ``repr`` or a log line: errors name the problem and the fix,
and third-party error texts are scrubbed of the key before they are shown.

Everything here is synchronous; the backend calls it through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.core.files import fsync_dir
from backend.core.redaction import redact

log = logging.getLogger(__name__)

ENV_VAR = "OPENROUTER_API_KEY"
KEY_FILE_NAME = "openrouter.key"
SECRETS_DIR_NAME = "secrets"

# OpenRouter keys look like "sk-or-v1-" + 64 hex digits (73 characters); leave room for other formats
# without accepting a pasted paragraph.
MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 512
# Printable ASCII without space: what every bearer token we know of is made of.
_KEY_SHAPE = re.compile(r"[\x21-\x7e]+")
_BACKEND_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")

# Keychain backend per OS, imported explicitly (module, class).
_OS_BACKENDS: dict[str, tuple[str, str]] = {
    "win32": ("keyring.backends.Windows", "WinVaultKeyring"),
    "darwin": ("keyring.backends.macOS", "Keyring"),
    "linux": ("keyring.backends.SecretService", "Keyring"),
}
# Friendly names for diagnostics.
_BACKEND_NAMES: dict[tuple[str, str], str] = {
    ("keyring.backends.Windows", "WinVaultKeyring"): "WinVault",
    ("keyring.backends.macOS", "Keyring"): "macOS Keychain",
    ("keyring.backends.SecretService", "Keyring"): "SecretService",
    ("keyring.backends.libsecret", "Keyring"): "libsecret",
    ("keyring.backends.kwallet", "DBusKeyring"): "KWallet",
}


@dataclass(frozen=True)
class KeyStatus:
    """What the UI may know about the key: never the key itself."""

    configured: bool
    source: str | None  # "policy" | "env" | "keyring" | "file" | None
    hint: str | None  # "…abcd": the last four characters only
    storage_note: str | None  # a sentence for the settings screen, or None


class KeyStoreError(Exception):
    """A user-facing failure; the message says how to fix it and never contains the key.

    ``code`` is one of ``invalid_key``, ``read_only``, ``disk_full``, ``permission``, ``keyring_locked``,
    ``keyring_error``, ``io_error``.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"KeyStoreError({self.message!r}, code={self.code!r})"


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
        if backend not in ("auto", "file") and not _BACKEND_SPEC.fullmatch(backend):
            raise ValueError(
                f"Unknown key storage backend {backend!r}: use 'auto', 'file' or 'package.module:ClassName'."
            )
        self._data_dir = Path(data_dir)
        self._backend_spec = backend
        self._env = _EnvView(env)
        self._policy = _Secret(policy_key.strip()) if policy_key and policy_key.strip() else None
        self._service = service
        self._username = username
        self._lock = threading.RLock()
        self._resolved = False
        self._keyring: Any = None  # a KeyringBackend instance, or None for the file
        self._keyring_name: str = "file"
        self._fallback_reason: str | None = None

    def __repr__(self) -> str:
        return f"KeyStore(backend={self._backend_spec!r}, data_dir={str(self._data_dir)!r})"

    # ----------------------------------------------------------------- public API

    @property
    def key_path(self) -> Path:
        """The private file used when no keychain is available."""
        return self._data_dir / SECRETS_DIR_NAME / KEY_FILE_NAME

    @property
    def backend_name(self) -> str:
        """Storage used for writes (diagnostics): "SecretService", "WinVault", "macOS Keychain", "file"…"""
        self._resolve()
        return self._keyring_name

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
            self._resolve()
            if self._keyring is not None:
                self._keyring_set(key)
                # A key left in the fallback file would shadow nothing but still sit on disk: remove it.
                self._remove_file()
            else:
                self._write_file(key)
            log.info("API key saved (%s)", self._keyring_name)
        return self.status()

    def delete(self) -> KeyStatus:
        """Remove the key from the keychain and the file. A key from the environment or policy stays in effect
        and the returned status says so."""
        with self._lock:
            self._resolve()
            if self._keyring is not None:
                self._keyring_delete()
            self._remove_file()
            log.info("API key removed from %s", self._keyring_name)
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
            self._resolve()
            if self._keyring is not None:
                stored = self._keyring_get()
                if stored:
                    return ("keyring", stored)
            stored = self._read_file()
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
            note = f"The key is stored in the system keychain ({self._keyring_name})."
        else:
            note = self._file_note()
        return KeyStatus(configured=True, source=source, hint=key_hint(key), storage_note=note)

    def _file_note(self) -> str:
        note = (
            "No system keychain was found, so the key is stored in a private file"
            f" ({self.key_path}, readable only by you)."
        )
        if self._keyring is not None:
            # The keychain exists but this key predates it (or was saved while it was unavailable).
            note = f"The key is stored in a private file ({self.key_path}, readable only by you)."
        return note

    def _write_note(self) -> str | None:
        """Where a new key would go, so the settings screen can say it before the user pastes one."""
        self._resolve()
        if self._keyring is not None:
            return f"A new key will be stored in the system keychain ({self._keyring_name})."
        note = (
            "No system keychain was found, so a new key will be stored in a private file"
            f" ({self.key_path}, readable only by you)."
        )
        if self._fallback_reason:
            note += f" ({self._fallback_reason})"
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

    # ----------------------------------------------------------------- backend selection

    def _resolve(self) -> None:
        """Pick the keychain backend once (lazily: probing Secret Service talks to D-Bus)."""
        with self._lock:
            if self._resolved:
                return
            self._resolved = True
            spec = self._backend_spec
            if spec == "file":
                return
            if spec == "auto":
                target = _OS_BACKENDS.get(sys.platform) or (
                    _OS_BACKENDS["linux"] if sys.platform.startswith(("linux", "freebsd")) else None
                )
                if target is None:
                    self._fallback_reason = f"no keychain support for platform {sys.platform}"
                    return
                with contextlib.suppress(Exception):  # a failure is reported by _load_backend below
                    _import_os_backend(target[0])
            else:
                module_name, _, class_name = spec.partition(":")
                target = (module_name, class_name)
            instance, reason = _load_backend(*target)
            if instance is None:
                self._fallback_reason = reason
                log.info("Keychain %s:%s not usable (%s); using the private file", *target, reason)
                return
            self._keyring = instance
            self._keyring_name = _BACKEND_NAMES.get(target) or getattr(instance, "name", None) or target[1]
            log.info("API key storage: %s", self._keyring_name)

    # ----------------------------------------------------------------- keyring operations

    def _keyring_error(self, exc: BaseException, verb: str, key: str | None = None) -> KeyStoreError:
        """``verb``: "read", "save" or "delete"."""
        import keyring.errors

        participle = {"read": "read", "save": "saved", "delete": "deleted"}[verb]
        if isinstance(exc, keyring.errors.KeyringLocked):
            return KeyStoreError(
                f"The system keychain ({self._keyring_name}) is locked, so the API key could not be"
                f" {participle}. Unlock it (log in to your desktop keychain) and try again.",
                code="keyring_locked",
            )
        detail = redact(str(exc), [key, self._policy.reveal() if self._policy else None])
        return KeyStoreError(
            f"The system keychain ({self._keyring_name}) could not {verb} the API key"
            f" ({detail or type(exc).__name__}). Unlock or repair the keychain and try again.",
            code="keyring_error",
        )

    def _keyring_get(self) -> str | None:
        try:
            value = self._keyring.get_password(self._service, self._username)
        except Exception as exc:
            raise self._keyring_error(exc, "read") from None
        return value.strip() if isinstance(value, str) and value.strip() else None

    def _keyring_set(self, key: str) -> None:
        try:
            self._keyring.set_password(self._service, self._username, key)
        except Exception as exc:
            # `from None`: a backend's own exception could carry the key in its arguments.
            raise self._keyring_error(exc, "save", key) from None

    def _keyring_delete(self) -> None:
        import keyring.errors

        try:
            self._keyring.delete_password(self._service, self._username)
        except keyring.errors.PasswordDeleteError:
            # Nothing stored (backends raise this for a missing entry): already deleted.
            pass
        except Exception as exc:
            raise self._keyring_error(exc, "delete") from None

    # ----------------------------------------------------------------- file fallback

    def _ensure_dir(self) -> Path:
        folder = self.key_path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.name == "posix":
                # mkdir's mode is filtered by the umask and ignored for an existing folder.
                os.chmod(folder, 0o700)
        except OSError as exc:
            raise _os_error(exc, folder, "create the private folder") from exc
        return folder

    def _read_file(self) -> str | None:
        path = self.key_path
        try:
            with open(path, "rb") as fh:
                if os.name == "posix" and os.fstat(fh.fileno()).st_mode & 0o077:
                    # Someone loosened it; a key file must stay private.
                    os.fchmod(fh.fileno(), 0o600)
                raw = fh.read(MAX_KEY_LENGTH * 4 + 16)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _os_error(exc, path, "read the API key from") from exc
        value = raw.decode("utf-8", errors="replace").strip()
        return value or None

    def _write_file(self, key: str) -> None:
        """Atomically replace the key file: the previous file stays intact on any failure."""
        folder = self._ensure_dir()
        tmp = folder / f".{KEY_FILE_NAME}.{secrets.token_hex(6)}.tmp"
        data = (key + "\n").encode("utf-8")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.key_path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _os_error(exc, self.key_path, "save the API key to") from None
        fsync_dir(folder)

    def _remove_file(self) -> None:
        try:
            self.key_path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(exc, self.key_path, "delete the API key file") from exc
        fsync_dir(self.key_path.parent)


def _import_os_backend(module_name: str) -> None:
    """Import the OS keychain module with literal import statements, so that PyInstaller's import
    analysis bundles it (keyring's own discovery uses entry points, which frozen apps lack)."""
    if module_name == "keyring.backends.Windows":
        import keyring.backends.Windows  # noqa: F401
    elif module_name == "keyring.backends.macOS":
        import keyring.backends.macOS  # noqa: F401
    elif module_name == "keyring.backends.SecretService":
        import keyring.backends.SecretService  # noqa: F401


def _load_backend(module_name: str, class_name: str) -> tuple[Any, str | None]:
    """Import and instantiate a keyring backend; (instance, None) if usable, else (None, reason)."""
    try:
        from keyring.backend import KeyringBackend

        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except Exception as exc:  # ImportError, missing optional dependencies, AttributeError
        return None, f"{module_name}:{class_name} could not be loaded: {exc}"
    if not (isinstance(cls, type) and issubclass(cls, KeyringBackend)):
        return None, f"{module_name}:{class_name} is not a keyring backend"
    try:
        # `priority` is the backend's own viability probe (e.g. Secret Service connects to D-Bus here).
        priority = cls.priority
    except Exception as exc:
        return None, f"{cls.__name__} is not available: {exc}"
    if not isinstance(priority, int | float) or priority <= 0:
        return None, f"{cls.__name__} is not usable here (priority {priority})"
    try:
        return cls(), None
    except Exception as exc:
        return None, f"{cls.__name__} could not be started: {exc}"


def _os_error(exc: OSError, path: Path, doing: str) -> KeyStoreError:
    """Turn a file-system error into a message that says what to do. ``doing``: "save the API key to"…"""
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return KeyStoreError(
            f"The disk is full, so Atelier could not {doing} {path}. Free some disk space and try again;"
            " the previously saved key was left unchanged.",
            code="disk_full",
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return KeyStoreError(
            f"Permission denied: Atelier could not {doing} {path}. Make sure your user account owns this"
            " folder and can write to it, then try again; the previously saved key was left unchanged.",
            code="permission",
        )
    return KeyStoreError(
        f"Atelier could not {doing} {path} ({exc.strerror or type(exc).__name__}). The previously saved key"
        " was left unchanged.",
        code="io_error",
    )
