"""The one way a byte count is shown to the user: binary units with their IEC names ("200 MiB").

Every limit and size in a message goes through :func:`format_size`, so the same limit reads the same
everywhere (a 200 MiB cap is never "209.715 MB" in one message and "200 MB" in another).
"""

from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def format_size(count: int) -> str:
    """``209715200`` → ``"200 MiB"``, ``1536`` → ``"1.5 KiB"``, ``512`` → ``"512 bytes"``.

    One decimal at most, dropped when it is zero, so exact limits read as whole numbers.
    """
    if count < 1024:
        return "1 byte" if count == 1 else f"{count} bytes"
    value = count / 1024
    unit = 0
    while round(value, 1) >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f}".removesuffix(".0") + " " + _UNITS[unit]
