"""Logging to ``<data dir>/logs/atelier.log`` with rotation. Secrets are scrubbed from every record.

A log file the disk refuses (full, read-only) never crashes the app or floods the console with tracebacks:
:func:`setup_logging` raises :class:`LogsUnwritable` with a message saying what is wrong and where, and a
write that fails later is reported once on stderr and dropped until the disk takes writes again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import logging.handlers
import sys
from pathlib import Path

from backend.core.redaction import redact, redact_key_shapes


class RedactSecrets(logging.Filter):
    """Replaces known secrets (the launch token, API-key-shaped strings) in log messages."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: list[str] = []

    def add(self, secret: str) -> None:
        if secret and secret not in self.secrets:
            self.secrets.append(secret)

    def scrub(self, text: str) -> str:
        return redact_key_shapes(redact(text, self.secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            # Render the traceback now, scrubbed, instead of letting the handler format it raw.
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.scrub(formatted)
        return True


REDACTOR = RedactSecrets()


class LogsUnwritable(Exception):
    """The log folder cannot be written; the message says why and where, for the user."""


def describe_unwritable(path: Path, exc: OSError) -> str:
    """One sentence for a folder or file the disk refuses: what is wrong, where, and what to do."""
    from backend.core.files import STORAGE_ERRNOS

    reason = exc.strerror or type(exc).__name__
    if exc.errno in STORAGE_ERRNOS and exc.errno not in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return (f"cannot write to the data folder: {path} is read-only or not writable by this user "
                f"({reason}). Make it writable, or choose another folder with ATELIER_DATA_DIR or --data-dir.")
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return (f"cannot write to the data folder: the disk holding {path} is full ({reason}). "
                "Free some space there (at least 10 MB) and start Atelier again.")
    return f"cannot write to the data folder {path} ({reason})."


class _LogFile(logging.handlers.RotatingFileHandler):
    """A rotating log file that reports a refused write once, on stderr, instead of a traceback per line."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._failing = False
        self._failed_now = False

    def emit(self, record: logging.LogRecord) -> None:
        self._failed_now = False
        super().emit(record)
        if self._failing and not self._failed_now:
            self._failing = False

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handleError(record)
            return
        self._failed_now = True
        if not self._failing:
            self._failing = True
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.write(f"atelier: log lines are dropped until the log file can be written again. "
                                 f"{describe_unwritable(Path(self.baseFilename), exc)}\n")


def setup_logging(logs_dir: Path, level: str = "INFO", *, console: bool = True) -> None:
    """Log to ``logs_dir/atelier.log`` (and the console). Raises :class:`LogsUnwritable` when the folder or
    the file cannot be written."""
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
        file_handler = _LogFile(logs_dir / "atelier.log", maxBytes=5 * 2**20, backupCount=5, encoding="utf-8")
    except OSError as exc:
        raise LogsUnwritable(describe_unwritable(Path(exc.filename or logs_dir), exc)) from None
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = [file_handler]
    if console:
        handlers.append(logging.StreamHandler())
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(REDACTOR)
        root.addHandler(handler)
    # Request lines carry the login URL's token: never log them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
