"""The one error the media package raises: user-facing, with a code the API maps to a status."""

from __future__ import annotations


class MediaError(Exception):
    """A user-facing media failure.

    ``code`` is ``too_large``, ``bad_data_url``, ``unsupported_type``, ``disk_full`` or ``io_error``; the
    message says what to do about it.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code

    @property
    def is_storage_failure(self) -> bool:
        """The disk refused a write (see :func:`backend.core.files.is_storage_failure`)."""
        return self.code in ("disk_full", "io_error")

    def __repr__(self) -> str:
        return f"MediaError({self.message!r}, code={self.code!r})"
