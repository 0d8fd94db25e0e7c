"""One size formatter: every limit in a message reads in binary units, the same way everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend.core.policy import PolicyError, load_policy
from backend.core.sizes import format_size
from backend.media.errors import MediaError
from backend.media.sniff import decode_data_url
from backend.media.store import MediaStore
from backend.openrouter.errors import too_large


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (10_000, "9.8 KiB"),
        (2**20 - 1, "1 MiB"),  # rounds up into the next unit, never "1024 KiB"
        (25 * 2**20, "25 MiB"),
        (200 * 2**20, "200 MiB"),
        (int(1.25 * 2**30), "1.2 GiB"),
        (3 * 2**40, "3 TiB"),
    ],
)
def test_format_size(count: int, text: str) -> None:
    assert format_size(count) == text


def test_the_same_limit_reads_the_same_in_every_message(tmp_path: Path) -> None:
    limit = 3 * 2**20
    messages = []

    with pytest.raises(MediaError) as stored:
        MediaStore(tmp_path / "media", max_bytes=limit).put_bytes(bytes(limit + 1))
    messages.append(stored.value.message)

    with pytest.raises(MediaError) as decoded:
        decode_data_url("data:image/png;base64," + "A" * (2 * limit + 2000), max_bytes=limit)
    messages.append(decoded.value.message)

    writer = MediaStore(tmp_path / "media", max_bytes=limit).open_writer()
    with pytest.raises(MediaError) as streamed:
        writer.write(bytes(limit + 1))
    messages.append(streamed.value.message)

    messages.append(too_large(limit).message)

    for message in messages:
        assert "the 3 MiB limit" in message, message
        assert not re.search(r"\d\s*(MB|KB|GB)\b", message), message


def test_an_oversized_policy_file_names_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_bytes(b" " * (2**20 + 1))
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value) == f"Policy file {path}: larger than 1 MiB; is it the right file?"
