"""Incremental Server-Sent Events parser (WHATWG "event stream interpretation").

Bytes go in as they arrive from the network, in chunks split at any byte boundary (mid-line, inside a
``\\r\\n`` pair, inside a multi-byte UTF-8 sequence, inside the leading BOM); complete events come out.

Unlike a browser's ``EventSource``, comment lines are not swallowed: each one is reported as an event with
``comment`` set, because OpenRouter sends ``: OPENROUTER PROCESSING`` comments as keep-alives and callers use
them to show that a request is still being worked on.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

__all__ = ["SSEEvent", "SSEParser"]

# One line terminator: CRLF, a lone CR or a lone LF (in that order of preference).
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event, or one comment line (``comment`` is not None, the other fields are defaults).

    ``id`` is the stream's last event ID at dispatch time (it persists across events, as in the spec).
    """

    data: str = ""
    event: str = "message"
    id: str = ""
    comment: str | None = None

    @property
    def is_comment(self) -> bool:
        """True for a comment line (a keep-alive), False for a real event."""
        return self.comment is not None


class SSEParser:
    """Feed bytes with :meth:`feed`, get events back; call :meth:`close` at the end of the stream."""

    def __init__(self) -> None:
        # "utf-8-sig" drops one leading BOM, even when its three bytes arrive in separate chunks; invalid
        # bytes become U+FFFD, as the spec's "UTF-8 decode" requires.
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._partial: list[str] = []  # pieces of the current, not yet terminated line
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF belongs to that terminator
        self._data: list[str] = []
        self._has_data = False
        self._event_type = ""
        self._last_event_id = ""
        self._closed = False
        #: Reconnection time in milliseconds from the last valid ``retry:`` field, if any.
        self.retry_ms: int | None = None

    @property
    def last_event_id(self) -> str:
        """The last event ID seen so far ("" if none)."""
        return self._last_event_id

    @property
    def incomplete(self) -> bool:
        """True if the stream so far ends inside a line or inside an event (nothing would dispatch it)."""
        return bool(self._partial) or self._has_data or bool(self._event_type)

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse the next chunk of bytes and return the events and comments it completed, in order."""
        if self._closed:
            raise RuntimeError("SSEParser.feed() called after close()")
        return self._feed_text(self._decoder.decode(chunk, final=False))

    def close(self) -> list[SSEEvent]:
        """End of stream: flush the decoder. Per the spec an unterminated event is discarded, so this
        returns only what a final flush completes (normally nothing); check :attr:`incomplete` first if a
        truncated stream matters to you."""
        if self._closed:
            return []
        events = self._feed_text(self._decoder.decode(b"", final=True))
        self._closed = True
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not text:
            return events
        pos = 0
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                pos = 1
        length = len(text)
        while pos < length:
            match = _LINE_END.search(text, pos)
            if match is None:
                self._partial.append(text[pos:])
                break
            piece = text[pos : match.start()]
            if self._partial:
                self._partial.append(piece)
                line = "".join(self._partial)
                self._partial.clear()
            else:
                line = piece
            # A CR at the very end of the text may be the first half of a CRLF split across chunks.
            if match.group() == "\r" and match.end() == length:
                self._skip_lf = True
            pos = match.end()
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        return events

    def _process_line(self, line: str) -> SSEEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            return SSEEvent(comment=line[1:].removeprefix(" "))
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._has_data = True
        elif field == "event":
            self._event_type = value
        elif field == "id":
            if "\x00" not in value:
                self._last_event_id = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        # Any other field name is ignored, as the spec requires.
        return None

    def _dispatch(self) -> SSEEvent | None:
        if not self._has_data:
            # An event with no data lines is not dispatched; its type is reset, the last event ID is kept.
            self._event_type = ""
            return None
        event = SSEEvent(
            data="\n".join(self._data), event=self._event_type or "message", id=self._last_event_id
        )
        self._data.clear()
        self._has_data = False
        self._event_type = ""
        return event
