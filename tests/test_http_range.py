"""parse_range: single byte ranges resolved against a body size, per RFC 9110 §14."""

from __future__ import annotations

import pytest

from backend.media.http_range import content_range, parse_range, unsatisfiable_content_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        # a-b
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=0-9", 10, (0, 9)),
        ("bytes=2-5", 10, (2, 5)),
        ("bytes=9-9", 10, (9, 9)),
        ("bytes=5-100", 10, (5, 9)),  # end clamped to the last byte
        ("bytes=0-99999999999999999999999", 10, (0, 9)),  # huge numbers do not overflow
        # a-
        ("bytes=0-", 10, (0, 9)),
        ("bytes=7-", 10, (7, 9)),
        ("bytes=9-", 10, (9, 9)),
        # -n
        ("bytes=-1", 10, (9, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-10", 10, (0, 9)),
        ("bytes=-500", 10, (0, 9)),  # longer than the body: the whole body
        # case-insensitive unit, optional whitespace, empty list elements
        ("Bytes=1-2", 10, (1, 2)),
        ("BYTES=1-2", 10, (1, 2)),
        (" bytes = 1 - 2 ", 10, (1, 2)),
        ("bytes=1-2,", 10, (1, 2)),
        ("bytes=, 1-2", 10, (1, 2)),
    ],
)
def test_satisfiable_ranges(header: str, size: int, expected: tuple[int, int]) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=10-", 10),  # starts at the end
        ("bytes=10-20", 10),
        ("bytes=11-", 10),
        ("bytes=-0", 10),  # empty suffix
        ("bytes=0-", 0),  # empty body
        ("bytes=0-0", 0),
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    assert parse_range(header, size) == "unsatisfiable"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=",
        "bytes=-",
        "bytes=5-2",  # last < first: invalid, ignored
        "bytes=a-b",
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=1_0-20",
        "bytes=١-٢",  # non-ASCII digits
        "bytes=0x1-2",
        "bytes 0-1",
        "items=0-1",
        "0-1",
        "bytes=0-1,2-3",  # multi-range: full body
        "bytes=0-1, -2",
        "bytes=0-1;q=1",
        "bytes=\n0-1",
    ],
)
def test_ignored_headers_mean_full_body(header: str | None) -> None:
    assert parse_range(header, 10) is None


def test_negative_size_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_range("bytes=0-1", -1)


def test_content_range_values() -> None:
    assert content_range(0, 9, 10) == "bytes 0-9/10"
    assert unsatisfiable_content_range(10) == "bytes */10"


def test_every_result_is_inside_the_body() -> None:
    # Exhaustive over small sizes: whatever is returned can be sliced safely.
    for size in range(0, 6):
        for a in ["", *map(str, range(0, 8))]:
            for b in ["", *map(str, range(0, 8))]:
                result = parse_range(f"bytes={a}-{b}", size)
                if isinstance(result, tuple):
                    start, end = result
                    assert 0 <= start <= end < size
                    if a:
                        assert start == int(a)
                    else:
                        assert end - start + 1 == min(int(b), size)
