"""User-facing errors. Each one renders as ``{"error": {"code", "message", ...}}`` with its HTTP status.

Messages say what happened and how to fix it, in words a creator understands.
"""

from __future__ import annotations

from typing import Any


class AtelierError(Exception):
    """An error the API reports to the caller as JSON."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error = {"code": self.code, "message": self.message}
        error.update({k: v for k, v in self.extra.items() if k != "generation"})
        out: dict[str, Any] = {"error": error}
        if "generation" in self.extra:
            out["generation"] = self.extra["generation"]
        return out


class NotFound(AtelierError):
    status = 404
    code = "not_found"


class LockedByPolicy(AtelierError):
    status = 403
    code = "locked_by_policy"


class Conflict(AtelierError):
    status = 409
    code = "conflict"


class StorageError(AtelierError):
    """The disk refused a write (full, read-only, permissions). Nothing already saved is lost."""

    status = 507
    code = "storage_error"
