"""The incremental SSE parser: WHATWG rules, and identical results however the bytes are chunked."""

from __future__ import annotations

import json
import random

import pytest

from backend.openrouter.sse import SSEEvent, SSEParser

CHUNK_1 = {
    "id": "gen-1773679501-1I8vCHmIm1kK9JPP1ezg",
    "provider": "OpenAI",
    "model": "openai/gpt-4o",
    "object": "chat.completion.chunk",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
}
CHUNK_2 = {
    "id": "gen-1773679501-1I8vCHmIm1kK9JPP1ezg",
    "model": "openai/gpt-4o",
    "choices": [{"index": 0, "delta": {"content": "Grüße, 世界 🎨 — café"}, "finish_reason": None}],
}
CHUNK_3 = {
    "id": "gen-1773679501-1I8vCHmIm1kK9JPP1ezg",
    "model": "openai/gpt-4o",
    "choices": [{"index": 0, "delta": {"content": "!"}, "finish_reason": "stop"}],
}
USAGE = {"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2, "cost": 0.00003}}


def openrouter_stream(newline: str = "\n", bom: bool = False) -> bytes:
    """A realistic OpenRouter stream: keep-alives, role chunk, non-ASCII content, usage, [DONE]."""
    nl = newline
    parts = [
        f": OPENROUTER PROCESSING{nl}{nl}",
        f": OPENROUTER PROCESSING{nl}{nl}",
        f"data: {json.dumps(CHUNK_1, ensure_ascii=False)}{nl}{nl}",
        f"data: {json.dumps(CHUNK_2, ensure_ascii=False)}{nl}{nl}",
        f": OPENROUTER PROCESSING{nl}{nl}",
        f"data: {json.dumps(CHUNK_3, ensure_ascii=False)}{nl}{nl}",
        f"data: {json.dumps(USAGE)}{nl}{nl}",
        f"data: [DONE]{nl}{nl}",
    ]
    raw = "".join(parts).encode("utf-8")
    return (b"\xef\xbb\xbf" + raw) if bom else raw


EXPECTED = [
    SSEEvent(comment="OPENROUTER PROCESSING"),
    SSEEvent(comment="OPENROUTER PROCESSING"),
    SSEEvent(data=json.dumps(CHUNK_1, ensure_ascii=False)),
    SSEEvent(data=json.dumps(CHUNK_2, ensure_ascii=False)),
    SSEEvent(comment="OPENROUTER PROCESSING"),
    SSEEvent(data=json.dumps(CHUNK_3, ensure_ascii=False)),
    SSEEvent(data=json.dumps(USAGE)),
    SSEEvent(data="[DONE]"),
]


def parse_chunks(chunks: list[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events


def split_at(raw: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(raw)]
    return [raw[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
def test_every_single_split_point_gives_the_same_events(newline: str, bom: bool) -> None:
    raw = openrouter_stream(newline, bom)
    assert parse_chunks([raw]) == EXPECTED
    for point in range(len(raw) + 1):
        assert parse_chunks(split_at(raw, [point])) == EXPECTED, f"split at byte {point}"


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_byte_by_byte_feeding(newline: str) -> None:
    raw = openrouter_stream(newline, bom=True)
    assert parse_chunks([raw[i : i + 1] for i in range(len(raw))]) == EXPECTED


def test_every_pair_of_split_points_around_multibyte_text() -> None:
    # The emoji (4 bytes), CJK (3 bytes) and umlaut (2 bytes) are the interesting places; exhaustive pairs
    # over a short event with a CRLF terminator and a BOM.
    raw = "\ufeffdata: ü世🎨\r\n\r\n".encode()
    expected = [SSEEvent(data="ü世🎨")]
    for first in range(len(raw) + 1):
        for second in range(first, len(raw) + 1):
            assert parse_chunks(split_at(raw, [first, second])) == expected, (first, second)


def test_random_chunkings_of_a_mixed_stream() -> None:
    # Deterministic property-style loop: many random chunkings, each line ending chosen at random.
    rng = random.Random(20261127)
    for _ in range(300):
        endings = [rng.choice(["\n", "\r\n", "\r"]) for _ in range(8)]
        for blank in (5, 7):  # after a lone CR, a lone LF would merge into one CRLF terminator
            if endings[blank - 1] == "\r" and endings[blank] == "\n":
                endings[blank] = "\r\n"
        text = (
            f": keep{endings[0]}"
            f"event: delta{endings[1]}"
            f"id: 7{endings[2]}"
            f"data: first ✓{endings[3]}"
            f"data:second{endings[4]}"
            f"{endings[5]}"
            f"data: 🎨{endings[6]}"
            f"{endings[7]}"
        )
        raw = text.encode()
        expected = [
            SSEEvent(comment="keep"),
            SSEEvent(data="first ✓\nsecond", event="delta", id="7"),
            SSEEvent(data="🎨", id="7"),
        ]
        points = sorted(rng.sample(range(len(raw) + 1), rng.randint(0, min(12, len(raw)))))
        assert parse_chunks(split_at(raw, points)) == expected, (text, points)


def test_crlf_split_between_cr_and_lf_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\n") == []  # the LF completes "data: a\r\n" — no extra empty line
    assert parser.feed(b"\r") == [SSEEvent(data="a")]
    assert parser.feed(b"\ndata: b\n\n") == [SSEEvent(data="b")]


def test_lone_cr_then_empty_chunks_keep_pending_state() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"") == []
    assert parser.feed(b"\r") == [SSEEvent(data="a")]


def test_field_parsing_rules() -> None:
    raw = (
        b"data\n"  # no colon: field "data" with empty value
        b"\n"
        b"data:no-space\n"
        b"data:  two spaces\n"  # only one leading space is removed
        b"\n"
        b"unknown: ignored\n"
        b"data: x\n"
        b"retry: 2500\n"
        b"retry: soon\n"  # not digits: ignored
        b"\n"
        b"event: only-type\n"
        b"\n"  # no data: nothing dispatched, type reset
        b"data: y\n"
        b"\n"
        b"id: bad\x00id\n"  # NUL in id: ignored
        b"data: z\n"
        b"\n"
    )
    parser = SSEParser()
    events = parser.feed(raw)
    assert events == [
        SSEEvent(data=""),
        SSEEvent(data="no-space\n two spaces"),
        SSEEvent(data="x"),
        SSEEvent(data="y"),
        SSEEvent(data="z"),
    ]
    assert parser.retry_ms == 2500
    assert parser.last_event_id == ""


def test_id_persists_and_can_be_reset() -> None:
    events = parse_chunks([b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"])
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "")]


def test_comments_are_reported_in_order_with_text() -> None:
    events = parse_chunks([b":\n: OPENROUTER PROCESSING\ndata: a\n:mid\n\n"])
    assert events == [
        SSEEvent(comment=""),
        SSEEvent(comment="OPENROUTER PROCESSING"),
        SSEEvent(comment="mid"),
        SSEEvent(data="a"),
    ]
    assert all(e.is_comment for e in events[:3]) and not events[3].is_comment


def test_bom_only_stripped_at_start() -> None:
    events = parse_chunks([b"\xef\xbb", b"\xbfdata: a\n\n", "data: \ufeffb\n\n".encode()])
    assert events == [SSEEvent(data="a"), SSEEvent(data="\ufeffb")]


def test_truncated_event_is_discarded_and_flagged() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: complete\n\ndata: {"choices": [') == [SSEEvent(data="complete")]
    assert parser.incomplete
    assert parser.close() == []
    with pytest.raises(RuntimeError):
        parser.feed(b"more")


def test_event_without_blank_line_at_eof_is_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: [DONE]\n") == []
    assert parser.incomplete
    assert parser.close() == []


def test_clean_end_is_not_incomplete() -> None:
    parser = SSEParser()
    parser.feed(openrouter_stream())
    assert not parser.incomplete


def test_invalid_utf8_becomes_replacement_character() -> None:
    assert parse_chunks([b"data: a\xffb\n\n"]) == [SSEEvent(data="a\ufffdb")]
    # A multi-byte sequence cut off by the end of the stream is not silently dropped mid-line either.
    parser = SSEParser()
    parser.feed(b"data: \xe4\xb8")
    assert parser.close() == []


def test_large_data_line_in_small_chunks() -> None:
    payload = "data:image/png;base64," + "QUJD" * 50_000
    raw = f"data: {payload}\n\n".encode()
    chunks = [raw[i : i + 997] for i in range(0, len(raw), 997)]
    assert parse_chunks(chunks) == [SSEEvent(data=payload)]
