"""Machine policy: settings that IT deploys once per machine.

The policy is a JSON object in the system location, ``policy.json`` in the platform's site config folder
(``/etc/xdg/Atelier`` on Linux, ``%ProgramData%\\Atelier`` on Windows, ``/Library/Application Support/Atelier``
on macOS). Each key holds either a bare value — a default the user may change — or
``{"value": ..., "locked": true|false}``. A locked value cannot be changed by the user: the settings API
refuses it with 403 ``locked_by_policy`` and the UI shows it as locked.

The user cannot turn the machine policy off. The system location is fixed per platform: no environment
variable moves it (not ``XDG_CONFIG_DIRS``, not platformdirs' overrides), and the system file always applies.
``ATELIER_POLICY_FILE`` (or the ``policy_file`` setting) names an *extra* file, layered on top: it can set
defaults and lock more keys, but a value the system file locks keeps the system's value and stays locked.

The files are validated strictly: an unknown key (a typo), a wrong type or an out-of-range value raises
:class:`PolicyError` whose message names the file and the field, because a silently ignored policy is
worse than an app that refuses to start with a clear message.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from backend.core.sizes import format_size
from backend.core.vocabulary import Kind
from backend.net.hosts import is_loopback_host

__all__ = [
    "POLICY_DOCS",
    "POLICY_ENV_VAR",
    "THEMES",
    "Policy",
    "PolicyError",
    "PolicyValue",
    "default_policy_path",
    "load_policy",
    "system_policy_path",
    "read_policy_key",
]

POLICY_ENV_VAR = "ATELIER_POLICY_FILE"
THEMES = ("system", "light", "dark")
# Editors use "$schema" to validate the file against docs/policy.schema.json; it carries no setting.
_IGNORED_KEYS = frozenset({"$schema"})
_MAX_POLICY_BYTES = 2**20


class PolicyError(Exception):
    """The policy file cannot be used. The message names the file and the field and says what to fix."""


@dataclass(frozen=True)
class PolicyValue:
    """One value from the policy file; ``locked`` means the user may not change it."""

    value: Any
    locked: bool


@dataclass(frozen=True)
class Policy:
    """The machine policy in force. ``path`` is None when no policy file exists.

    ``path`` is the system file when there is one, else the extra file; ``extra_path`` is the extra file
    when both apply. ``ignored`` names the keys the extra file tried to change although the system file
    locks them (the system's values were kept).
    """

    path: Path | None = None
    values: Mapping[str, PolicyValue] = field(default_factory=lambda: MappingProxyType({}))
    extra_path: Path | None = None
    ignored: tuple[str, ...] = ()

    def get(self, name: str) -> PolicyValue | None:
        """The policy entry for ``name``, or None when the policy does not mention it."""
        return self.values.get(name)

    def value(self, name: str, default: Any = None) -> Any:
        """The policy value for ``name`` (locked or not), or ``default``."""
        entry = self.values.get(name)
        return default if entry is None else entry.value

    def is_locked(self, name: str) -> bool:
        """True when IT locked ``name``: the user must not be able to change it."""
        entry = self.values.get(name)
        return entry is not None and entry.locked

    @property
    def locked_names(self) -> tuple[str, ...]:
        """Names of every locked key, sorted."""
        return tuple(sorted(name for name, entry in self.values.items() if entry.locked))

    @property
    def defaults(self) -> dict[str, Any]:
        """Every value the policy sets, locked or not, as a plain dict."""
        return {name: entry.value for name, entry in self.values.items()}

    def model_allowed(self, model_id: str) -> bool:
        """Whether ``model_id`` matches ``allowed_models`` (globs, case-insensitive); no list allows all."""
        patterns = self.value("allowed_models")
        if not patterns:
            return True
        candidate = model_id.strip().lower()
        # fnmatchcase on lowered strings: plain fnmatch would follow the OS's case rules.
        return any(fnmatch.fnmatchcase(candidate, pattern.lower()) for pattern in patterns)

    @property
    def user_key_allowed(self) -> bool:
        """False when the key must come from the policy ``api_key_file`` or ``OPENROUTER_API_KEY``."""
        return bool(self.value("allow_user_key", True))


def system_policy_path() -> Path:
    """The machine policy file. Fixed per platform: no environment variable can move it."""
    if sys.platform == "win32":
        return _windows_program_data() / "Atelier" / "policy.json"
    if sys.platform == "darwin":
        return Path("/Library/Application Support/Atelier/policy.json")
    # The XDG default for system configuration; XDG_CONFIG_DIRS is the user's to set, so it is not consulted.
    return Path("/etc/xdg/Atelier/policy.json")


def default_policy_path() -> Path:
    """Where the machine policy lives (the system location; see :func:`system_policy_path`)."""
    return system_policy_path()


def _windows_program_data() -> Path:
    # The shell's known folder, not %ProgramData% or platformdirs' WIN_PD_OVERRIDE_* (both are environment).
    try:
        from platformdirs.windows import get_win_folder_via_ctypes

        return Path(get_win_folder_via_ctypes("CSIDL_COMMON_APPDATA"))
    except Exception:  # noqa: BLE001 - any failure falls back to the standard location
        return Path("C:/ProgramData")


def load_policy(
    path: Path | None = None, env: Mapping[str, str] = os.environ, *, system_path: Path | None = None
) -> Policy:
    """Read and validate the machine policy in force.

    The system file (:func:`system_policy_path`; ``system_path`` is for tests only) always applies. The
    extra file is ``path`` when given, else ``ATELIER_POLICY_FILE`` when set: its entries are layered on
    top, except for keys the system file locks, which keep the system's value and lock. A missing file
    means no policy from it; an unreadable or invalid file raises :class:`PolicyError`.
    """
    system_file = Path(system_path) if system_path is not None else system_policy_path()
    system = _read_file(system_file)
    if path is None:
        configured = env.get(POLICY_ENV_VAR, "").strip()
        path = Path(configured) if configured else None
    if path is None:
        return system
    extra_file = Path(os.path.expanduser(path))
    if _same_file(extra_file, system_file):
        return system
    extra = _read_file(extra_file)
    if extra.path is None:
        return system
    if system.path is None:
        return extra
    return _layer(system, extra)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _layer(system: Policy, extra: Policy) -> Policy:
    """The system policy with the extra file's entries on top, where the system file does not lock them."""
    values = dict(system.values)
    ignored = []
    for name, entry in extra.values.items():
        if system.is_locked(name):
            if entry != system.values[name]:
                ignored.append(name)
            continue
        values[name] = entry
    _check_consistency(values, f"Policy file {extra.path} (on top of {system.path})")
    return Policy(path=system.path, values=MappingProxyType(values), extra_path=extra.path,
                  ignored=tuple(sorted(ignored)))


def _read_file(path: Path) -> Policy:
    path = Path(os.path.expanduser(path))
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_POLICY_BYTES + 1)
    except FileNotFoundError:
        return Policy(path=None)
    except NotADirectoryError:
        return Policy(path=None)
    except IsADirectoryError:
        raise PolicyError(f"Policy file {path}: is a directory, expected a JSON file.") from None
    except PermissionError:
        raise PolicyError(
            f"Policy file {path}: cannot be read by this user; "
            "make it readable by all users (e.g. mode 0644)."
        ) from None
    except OSError as exc:
        raise PolicyError(f"Policy file {path}: cannot be read ({exc.strerror or exc}).") from None
    if len(raw) > _MAX_POLICY_BYTES:
        raise PolicyError(f"Policy file {path}: larger than {format_size(_MAX_POLICY_BYTES)}; is it the right file?")
    try:
        # utf-8-sig: Windows editors like to prepend a byte-order mark.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"Policy file {path}: not UTF-8 text (byte {exc.start}).") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"Policy file {path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from None
    return parse_policy(document, path=path)


def parse_policy(document: Any, *, path: Path) -> Policy:
    """Validate an already-decoded policy document (see :func:`load_policy`)."""
    where = f"Policy file {path}"
    if not isinstance(document, dict):
        raise PolicyError(f"{where}: the top level must be a JSON object (got {_type_name(document)}).")
    values: dict[str, PolicyValue] = {}
    for name, raw_entry in document.items():
        if name in _IGNORED_KEYS:
            continue
        spec = _SPECS.get(name)
        if spec is None:
            hint = difflib.get_close_matches(name, _SPECS.keys(), n=1)
            suggestion = f" Did you mean '{hint[0]}'?" if hint else ""
            raise PolicyError(
                f"{where}: unknown key '{name}'.{suggestion} Known keys: {', '.join(sorted(_SPECS))}."
            )
        value, locked = _unwrap(raw_entry, name, where)
        values[name] = PolicyValue(value=spec.check(value, _Field(where, name, path)), locked=locked)
    _check_consistency(values, where)
    return Policy(path=path, values=MappingProxyType(values))


def read_policy_key(policy: Policy) -> str | None:
    """The API key pre-provisioned through the policy ``api_key_file``, or None when none is configured.

    Raises :class:`PolicyError` when the file is configured but missing, unreadable or empty, so the user
    sees what IT has to fix. The key itself never appears in a message.
    """
    key_file = policy.value("api_key_file")
    if key_file is None:
        return None
    where = f"Policy file {policy.path}" if policy.path else "Policy"
    try:
        text = Path(key_file).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PolicyError(f"{where}: 'api_key_file' {key_file} does not exist.") from None
    except PermissionError:
        raise PolicyError(f"{where}: 'api_key_file' {key_file} is not readable by this user.") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = type(exc).__name__
        raise PolicyError(f"{where}: 'api_key_file' {key_file} cannot be read ({reason}).") from None
    key = text.strip()
    if not key:
        raise PolicyError(f"{where}: 'api_key_file' {key_file} is empty.")
    if any(ch.isspace() for ch in key):
        raise PolicyError(f"{where}: 'api_key_file' {key_file} must hold exactly one key on one line.")
    return key


# --- validation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    where: str
    name: str
    path: Path

    def fail(self, requirement: str, got: Any) -> PolicyError:
        return PolicyError(f"{self.where}: '{self.name}' {requirement} (got {_show(got)}).")


@dataclass(frozen=True)
class _Spec:
    check: Callable[[Any, _Field], Any]
    kind: str
    help: str


def _unwrap(entry: Any, name: str, where: str) -> tuple[Any, bool]:
    # No policy value is itself an object, so any object is the {"value", "locked"} form.
    if not isinstance(entry, dict):
        return entry, False
    extra = sorted(set(entry) - {"value", "locked"})
    if extra:
        raise PolicyError(
            f"{where}: '{name}' has unknown field(s) {', '.join(repr(k) for k in extra)}; "
            'use {"value": ..., "locked": true|false}.'
        )
    if "value" not in entry:
        raise PolicyError(f'{where}: \'{name}\' is missing "value"; use {{"value": ..., "locked": true}}.')
    locked = entry.get("locked", False)
    if not isinstance(locked, bool):
        raise PolicyError(f"{where}: '{name}.locked' must be true or false (got {_show(locked)}).")
    return entry["value"], locked


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _bool(value: Any, f: _Field) -> bool:
    if not isinstance(value, bool):
        raise f.fail("must be true or false", value)
    return value


def _number_at_least_zero(value: Any, f: _Field) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise f.fail("must be a number ≥ 0", value)
    return float(value)


def _int_range(low: int, high: int | None) -> Callable[[Any, _Field], int]:
    def check(value: Any, f: _Field) -> int:
        # JSON has one number type: accept 4.0 but not 4.5.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high and value > high):
            bound = f"between {low} and {high}" if high else f"≥ {low}"
            raise f.fail(f"must be a whole number {bound}", value)
        return value

    return check


def _model_id(value: Any, f: _Field) -> str:
    if not isinstance(value, str) or not value.strip() or any(ch.isspace() for ch in value.strip()):
        raise f.fail('must be a model id such as "openai/gpt-4o-mini"', value)
    return value.strip()


def _model_globs(value: Any, f: _Field) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise f.fail('must be a non-empty list of model id patterns such as ["openai/*"]', value)
    patterns = []
    for item in value:
        if not isinstance(item, str) or not item.strip() or any(ch.isspace() for ch in item.strip()):
            raise f.fail('must contain only model id patterns such as "anthropic/claude-*"', item)
        patterns.append(item.strip())
    return tuple(patterns)


def _base_url(value: Any, f: _Field) -> str:
    requirement = "must be an https:// URL (http:// only for 127.0.0.1/localhost)"
    if not isinstance(value, str):
        raise f.fail(requirement, value)
    try:
        parts = urlsplit(value.strip())
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise f.fail(requirement, value) from None
    if not host or parts.username or parts.password or parts.query or parts.fragment:
        raise f.fail(requirement + ", without credentials, query or fragment", value)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    raise f.fail(requirement, value)


def _proxy_url(value: Any, f: _Field) -> str:
    requirement = 'must be an http:// or https:// proxy URL such as "http://proxy.corp.example:3128"'
    if not isinstance(value, str):
        raise f.fail(requirement, value)
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise f.fail(requirement, "<redacted>" if "@" in value else value) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        # Never echo credentials embedded in a proxy URL.
        raise f.fail(requirement, "<redacted>" if "@" in value else value)
    return value.strip().rstrip("/")


def _file_path(value: Any, f: _Field) -> str:
    if not isinstance(value, str) or not value.strip():
        raise f.fail("must be a file path", value)
    expanded = Path(os.path.expandvars(os.path.expanduser(value.strip())))
    if not expanded.is_absolute():
        # Relative paths are relative to the policy file, so a policy folder can be copied as a unit.
        expanded = f.path.parent / expanded
    return str(expanded)


def _api_key_file(value: Any, f: _Field) -> str:
    # Not checked for existence here: a per-user path may be provisioned after the policy; the key store
    # reports a missing file through read_policy_key() when the key is needed.
    return _file_path(value, f)


def _ca_bundle(value: Any, f: _Field) -> str:
    path = _file_path(value, f)
    if not Path(path).is_file():
        raise f.fail("must name an existing PEM file of CA certificates", path)
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise PolicyError(
            f"{f.where}: 'ca_bundle' {path} holds no usable PEM CA certificates ({type(exc).__name__})."
        ) from None
    return path


def _theme(value: Any, f: _Field) -> str:
    if value not in THEMES:
        raise f.fail("must be one of " + ", ".join(f'"{t}"' for t in THEMES), value)
    return value


_SPECS: dict[str, _Spec] = {
    "openrouter_base_url": _Spec(
        _base_url, "https URL", "OpenRouter API base URL, e.g. an internal gateway (http only for loopback)."
    ),
    "allowed_models": _Spec(
        _model_globs, "list of globs", "Model ids users may pick, as case-insensitive glob patterns."
    ),
    "default_model_text": _Spec(_model_id, "model id", "Default model for text generation."),
    "default_model_image": _Spec(_model_id, "model id", "Default model for image generation."),
    "default_model_video": _Spec(_model_id, "model id", "Default model for video generation."),
    "budget_monthly_usd": _Spec(
        _number_at_least_zero, "number ≥ 0", "Monthly spending budget in US dollars."
    ),
    "allow_user_key": _Spec(
        _bool, "boolean", "false: users cannot enter a key; it comes from api_key_file or OPENROUTER_API_KEY."
    ),
    "api_key_file": _Spec(_api_key_file, "path", "File holding a pre-provisioned OpenRouter key (one line)."),
    "proxy": _Spec(_proxy_url, "http(s) URL", "HTTP proxy for OpenRouter traffic; wins over HTTPS_PROXY."),
    "ca_bundle": _Spec(_ca_bundle, "path", "Extra PEM CA certificates, trusted on top of the OS store."),
    "outbox_max_queued": _Spec(_int_range(1, None), "integer ≥ 1", "Most generations waiting in the outbox."),
    "outbox_concurrency": _Spec(_int_range(1, 16), "integer 1–16", "Generations the outbox sends at once."),
    "retry_unknown_text": _Spec(
        _bool, "boolean", "Retry text/image requests whose fate is unknown after a dropped connection."
    ),
    "theme": _Spec(_theme, " | ".join(THEMES), "Colour theme of the window."),
}

#: (key, type, help) for every policy key, in file order; docs and the schema are checked against it.
POLICY_DOCS: tuple[tuple[str, str, str], ...] = tuple((k, s.kind, s.help) for k, s in _SPECS.items())


def _check_consistency(values: Mapping[str, PolicyValue], where: str) -> None:
    patterns = values.get("allowed_models")
    if patterns is None:
        return
    probe = Policy(path=None, values=MappingProxyType({"allowed_models": patterns}))
    for kind in Kind:
        default = values.get(f"default_model_{kind}")
        if default is not None and not probe.model_allowed(default.value):
            raise PolicyError(
                f"{where}: 'default_model_{kind}' {default.value!r} is not matched by 'allowed_models'."
            )
