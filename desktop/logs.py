"""Logging to ``<data dir>/logs/atelier.log`` with rotation. Secrets are scrubbed from every record."""

from __future__ import annotations

import logging
import logging.handlers
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


def setup_logging(logs_dir: Path, level: str = "INFO", *, console: bool = True) -> None:
    logs_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.setLevel(level.upper())
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    file_handler = logging.handlers.RotatingFileHandler(
        logs_dir / "atelier.log", maxBytes=5 * 2**20, backupCount=5, encoding="utf-8"
    )
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
