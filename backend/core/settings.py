"""Runtime settings: defaults, overridden by ``ATELIER_<NAME>`` environment variables, then by arguments.

Every field is documented in ``SETTINGS_DOCS``; a test fails when one is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "Atelier"
DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"


def default_data_dir() -> Path:
    """The per-user data directory (created on first use)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, ensure_exists=True))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    openrouter_base_url: str = DEFAULT_BASE_URL
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 300.0
    video_poll_seconds: float = 10.0
    probe_seconds: float = 10.0
    cost_lookup_seconds: str = "2,10,60"
    outbox_concurrency: int = 4
    outbox_max_queued: int = 10_000
    batch_concurrency: int = 0
    retry_unknown_text: bool = True
    max_attempts: int = 8
    connect_timeout_seconds: float = 15.0
    request_timeout_seconds: float = 600.0
    stream_idle_timeout_seconds: float = 180.0
    max_media_bytes: int = 200 * 2**20
    max_answer_bytes: int = 8 * 2**20
    max_request_bytes: int = 64 * 2**20
    models_refresh_hours: float = 24.0
    keyring_backend: str = "auto"
    policy_file: Path | None = None
    proxy: str | None = None
    ca_bundle: Path | None = None
    log_level: str = "INFO"
    import_max_bytes: int = 4 * 2**30
    backup_keep: int = 7
    backup_interval_hours: float = 24.0
    no_window: bool = False
    no_browser: bool = False

    @property
    def cost_lookup_delays(self) -> tuple[float, ...]:
        """``cost_lookup_seconds`` as numbers: when, after a stream stopped, its cost is looked up."""
        return tuple(float(part) for part in self.cost_lookup_seconds.split(",") if part.strip())

    @property
    def db_path(self) -> Path:
        return self.data_dir / "atelier.duckdb"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def backups_dir(self) -> Path:
        return self.data_dir / "backups"

    @property
    def exports_dir(self) -> Path:
        return self.data_dir / "exports"

    @property
    def runtime_path(self) -> Path:
        return self.data_dir / "runtime.json"

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``ATELIER_<NAME>`` variables from ``env``, then keyword overrides.

        Raises ``ValueError`` naming the variable when a value cannot be parsed.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            var = "ATELIER_" + f.name.upper()
            if var in env and env[var] != "":
                values[f.name] = _parse(f, env[var], var)
        for name, value in overrides.items():
            if value is None:
                continue
            f = _FIELDS.get(name)
            if f is None:
                raise TypeError(f"unknown setting {name!r}")
            values[name] = _parse(f, value, name) if isinstance(value, str) else value
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"]).expanduser()
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not self.openrouter_base_url.startswith(("https://", "http://")):
            raise ValueError("ATELIER_OPENROUTER_BASE_URL must start with https:// (or http:// for a local gateway)")
        for name in ("retry_base_seconds", "retry_max_seconds", "video_poll_seconds", "probe_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ATELIER_{name.upper()} must be greater than 0")
        try:
            delays = self.cost_lookup_delays
        except ValueError:
            delays = ()
        if not delays or any(d < 0 for d in delays) or list(delays) != sorted(delays):
            raise ValueError("ATELIER_COST_LOOKUP_SECONDS must be a comma-separated, increasing list of seconds")
        if self.max_answer_bytes < 1024:
            raise ValueError("ATELIER_MAX_ANSWER_BYTES must be at least 1024")
        if self.backup_interval_hours <= 0 or self.backup_keep < 1:
            raise ValueError("ATELIER_BACKUP_INTERVAL_HOURS must be above 0 and ATELIER_BACKUP_KEEP at least 1")
        if self.outbox_concurrency < 1:
            raise ValueError("ATELIER_OUTBOX_CONCURRENCY must be at least 1")
        if self.batch_concurrency < 0:
            raise ValueError("ATELIER_BATCH_CONCURRENCY must be 0 (the outbox concurrency) or more")

    def ensure_dirs(self) -> None:
        """Create the data directory tree (private to the user where the OS supports modes)."""
        for path in (self.data_dir, self.media_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            os.chmod(self.data_dir, 0o700)


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def _parse(f: dataclasses.Field, raw: str, where: str) -> Any:
    kind = str(f.type)
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind.startswith("Path"):
            return Path(raw).expanduser()
        return raw
    except ValueError:
        raise ValueError(f"{where}={raw!r} is not a valid {kind.split(' ')[0]}") from None


SETTINGS_DOCS: dict[str, str] = {
    "data_dir": "Where the database, media, logs and runtime.json live (default: the platform user data dir).",
    "openrouter_base_url": "OpenRouter API base URL; IT gateways and tests point it elsewhere.",
    "retry_base_seconds": "First retry delay of the outbox; doubles each attempt, with full jitter.",
    "retry_max_seconds": "Longest delay between two attempts of one generation.",
    "video_poll_seconds": "How often a running video job is polled.",
    "probe_seconds": "How often reachability of OpenRouter is checked while offline.",
    "cost_lookup_seconds": "When (seconds after it ended, comma-separated) the cost of a stopped stream is looked up "
    "from OpenRouter's generation stats; after the last, Atelier gives up.",
    "outbox_concurrency": "How many queued generations are sent at once.",
    "outbox_max_queued": "Most generations that may wait in the outbox.",
    "batch_concurrency": "How many batch items are sent at once (0: as many as outbox_concurrency); requests of "
    "their own always go first.",
    "retry_unknown_text": "Retry text/image requests whose delivery is unknown (may bill twice).",
    "max_attempts": "Attempts (that reached OpenRouter) before a generation fails for good.",
    "connect_timeout_seconds": "Timeout for connecting to OpenRouter.",
    "request_timeout_seconds": "Timeout for a non-streamed answer.",
    "stream_idle_timeout_seconds": "A stream with no bytes (not even keep-alives) for this long is broken.",
    "max_media_bytes": "Largest image or video accepted from OpenRouter or as a reference.",
    "max_answer_bytes": "Largest text answer (content, reasoning, tool calls) accepted from OpenRouter; a longer one "
    "is cut off there and kept as interrupted (never retried).",
    "max_request_bytes": "Largest request body the local API accepts.",
    "models_refresh_hours": "How often the model catalogue is refreshed while online.",
    "keyring_backend": "'auto' (OS keychain, file fallback), 'file', or 'module:Class' for a keyring backend.",
    "policy_file": "An extra policy file on top of the machine one: it can add locks, never remove or unlock one.",
    "proxy": "HTTPS proxy for OpenRouter (default: HTTPS_PROXY / the policy).",
    "ca_bundle": "Extra CA certificates (PEM) trusted besides the OS store.",
    "log_level": "Log level: DEBUG, INFO, WARNING or ERROR (any case).",
    "import_max_bytes": "Largest export zip that POST /imports accepts (bytes).",
    "backup_keep": "How many backups are kept (the oldest are removed after a new one).",
    "backup_interval_hours": "How often the library is backed up automatically while Atelier runs.",
    "no_window": "Open no app window: serve the UI and open it in the system browser (--no-window: print it only).",
    "no_browser": "Never start the system browser (headless start-up, OAuth sign-in); print the address instead.",
}
