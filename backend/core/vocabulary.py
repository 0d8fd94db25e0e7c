"""The words a generation's life is told in: statuses, kinds and attempt outcomes (see docs/outbox.md).

They are ``StrEnum`` members, so they compare equal to the plain strings stored in DuckDB and sent as JSON.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"


class Kind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    VIDEO = "video"


# A generation in one of these never changes status again (except through an explicit retry).
TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.INTERRUPTED, Status.CANCELLED})
# Still owed to the user: waiting or being sent.
PENDING = frozenset({Status.QUEUED, Status.RUNNING})
# What a retry may queue again: waiting already, or ended without an answer the user kept as done.
RETRYABLE = (Status.QUEUED, Status.FAILED, Status.INTERRUPTED, Status.CANCELLED)
