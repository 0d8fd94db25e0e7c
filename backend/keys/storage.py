"""The two places a saved key can live: the OS keychain and a private file (docs/security.md, "The API key").

The keychain backend is chosen explicitly per OS (Windows Credential Manager, macOS Keychain, Secret Service)
instead of through keyring's entry-point discovery, which falls back to the ``fail`` backend in frozen apps.
The private file is ``<data_dir>/secrets/openrouter.key`` (mode 0600, folder 0700), replaced atomically.

Neither ever puts the key in an error: errors name the problem and the fix, and third-party error texts are
scrubbed of the key before they are shown.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.core.files import DENIED_ERRNOS, FULL_ERRNOS, fsync_dir, write_all
from backend.core.redaction import redact

log = logging.getLogger(__name__)

KEY_FILE_NAME = "openrouter.key"
SECRETS_DIR_NAME = "secrets"
# OpenRouter keys look like "sk-or-v1-" + 64 hex digits (73 characters); leave room for other formats
# without accepting a pasted paragraph.
MIN_KEY_LENGTH = 8
MAX_KEY_LENGTH = 512

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


class Keychain:
    """One entry (``service``, ``username``) in the OS keychain, when there is a usable one.

    ``spec`` is ``"auto"`` (this OS's keychain), ``"file"`` (none) or ``"module:Class"`` naming a
    ``keyring.backend.KeyringBackend`` subclass (IT and tests). The backend is picked once, lazily: probing
    Secret Service talks to D-Bus. ``hidden`` returns another secret to scrub from errors (the policy's key).
    """

    def __init__(self, spec: str, *, service: str, username: str, hidden: Callable[[], str | None]) -> None:
        if spec not in ("auto", "file") and not _BACKEND_SPEC.fullmatch(spec):
            raise ValueError(
                f"Unknown key storage backend {spec!r}: use 'auto', 'file' or 'package.module:ClassName'."
            )
        self._spec = spec
        self._service = service
        self._username = username
        self._hidden = hidden
        self._lock = threading.RLock()
        self._resolved = False
        self._backend: Any = None  # a KeyringBackend instance, or None for the file
        self._name = "file"
        self._fallback_reason: str | None = None

    @property
    def usable(self) -> bool:
        """Whether a keychain backend was found (otherwise the key goes to the private file)."""
        self._resolve()
        return self._backend is not None

    @property
    def name(self) -> str:
        """"SecretService", "WinVault", "macOS Keychain", …, or "file" when there is none."""
        self._resolve()
        return self._name

    @property
    def fallback_reason(self) -> str | None:
        """Why no keychain is used, when one was looked for."""
        self._resolve()
        return self._fallback_reason

    def _resolve(self) -> None:
        """Pick the keychain backend once (lazily: probing Secret Service talks to D-Bus)."""
        with self._lock:
            if self._resolved:
                return
            self._resolved = True
            spec = self._spec
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
            self._backend = instance
            self._name = _BACKEND_NAMES.get(target) or getattr(instance, "name", None) or target[1]
            log.info("API key storage: %s", self._name)

    def _error(self, exc: BaseException, verb: str, key: str | None = None) -> KeyStoreError:
        """``verb``: "read", "save" or "delete"."""
        import keyring.errors

        participle = {"read": "read", "save": "saved", "delete": "deleted"}[verb]
        if isinstance(exc, keyring.errors.KeyringLocked):
            return KeyStoreError(
                f"The system keychain ({self._name}) is locked, so the API key could not be"
                f" {participle}. Unlock it (log in to your desktop keychain) and try again.",
                code="keyring_locked",
            )
        detail = redact(str(exc), [key, self._hidden()])
        return KeyStoreError(
            f"The system keychain ({self._name}) could not {verb} the API key"
            f" ({detail or type(exc).__name__}). Unlock or repair the keychain and try again.",
            code="keyring_error",
        )

    def get(self) -> str | None:
        """The stored key, or None; a locked or failing keychain raises KeyStoreError."""
        try:
            value = self._backend.get_password(self._service, self._username)
        except Exception as exc:
            raise self._error(exc, "read") from None
        return value.strip() if isinstance(value, str) and value.strip() else None

    def set(self, key: str) -> None:
        try:
            self._backend.set_password(self._service, self._username, key)
        except Exception as exc:
            # `from None`: a backend's own exception could carry the key in its arguments.
            raise self._error(exc, "save", key) from None

    def delete(self) -> None:
        import keyring.errors

        try:
            self._backend.delete_password(self._service, self._username)
        except keyring.errors.PasswordDeleteError:
            # Nothing stored (backends raise this for a missing entry): already deleted.
            pass
        except Exception as exc:
            raise self._error(exc, "delete") from None


class KeyFile:
    """The private file a key is kept in when there is no keychain: ``path``, mode 0600 in a 0700 folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _ensure_dir(self) -> Path:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if os.name == "posix":
                # mkdir's mode is filtered by the umask and ignored for an existing folder.
                os.chmod(folder, 0o700)
        except OSError as exc:
            raise _os_error(exc, folder, "create the private folder") from exc
        return folder

    def read(self) -> str | None:
        path = self.path
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

    def write(self, key: str) -> None:
        """Atomically replace the key file: the previous file stays intact on any failure."""
        folder = self._ensure_dir()
        tmp = folder / f".{self.path.name}.{secrets.token_hex(6)}.tmp"
        data = (key + "\n").encode("utf-8")
        try:
            fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0), 0o600)
            try:
                write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise _os_error(exc, self.path, "save the API key to") from None
        fsync_dir(folder)

    def remove(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(exc, self.path, "delete the API key file") from exc
        fsync_dir(self.path.parent)


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
    if exc.errno in FULL_ERRNOS:
        return KeyStoreError(
            f"The disk is full, so Atelier could not {doing} {path}. Free some disk space and try again;"
            " the previously saved key was left unchanged.",
            code="disk_full",
        )
    if exc.errno in DENIED_ERRNOS:
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
