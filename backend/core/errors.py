"""User-facing errors. Each one renders as ``{"error": {"code", "message", ...}}`` with its HTTP status.

Messages say what happened and how to fix it, in words a creator understands. An error whose fix is on a
screen of the app also says which one, as ``"action"`` (``"settings"``: the key or the budget), so the UI
links to it instead of keeping its own list of codes.
"""

from __future__ import annotations

from typing import Any

#: Where the user fixes an error with this code: the Settings screen (the key, the credits, the budget).
ACTIONS: dict[str, str] = {
    "no_api_key": "settings",
    "invalid_key": "settings",
    "insufficient_credits": "settings",
    "budget_exceeded": "settings",
}


def action_for(code: str | None) -> str | None:
    """The screen that fixes an error with ``code`` (``"settings"``), or None."""
    return ACTIONS.get(code or "")


def error_dict(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """An ``error`` object (``code``, ``message``, ``action`` when there is one, then ``extra`` without Nones),
    for errors kept with a generation as well as those answered at once."""
    error: dict[str, Any] = {"code": code, "message": message}
    action = action_for(code)
    if action:
        error["action"] = action
    error.update({k: v for k, v in extra.items() if v is not None})
    return error


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
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        action = action_for(self.code)
        if action:
            error["action"] = action
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
