"""``atelier doctor`` names the system library the Qt window is missing, and the package that provides it."""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import sys
from pathlib import Path

import pytest

from backend.core.settings import Settings
from desktop.doctor import run_doctor, window_check
from desktop.toolkit import debian_package, missing_libraries, qt_binaries

linux_qt = pytest.mark.skipif(
    not sys.platform.startswith("linux") or importlib.util.find_spec("PySide6") is None or not shutil.which("ldd"),
    reason="needs Linux, ldd and the 'gui' extra",
)


def qxcb_needing(tmp_path: Path, replaced: bytes, replacement: bytes) -> Path:
    """A copy of PySide6's xcb platform plugin whose dependency ``replaced`` is renamed to ``replacement``.

    Everything else resolves as for the real plugin (its Qt libraries through ``$ORIGIN/../../lib``), so a
    real ``ldd`` sees exactly one missing library: as on a machine without that package.
    """
    real = next(path for path in qt_binaries() if path.name == "libqxcb.so")
    qt = real.parent.parent.parent
    platforms = tmp_path / "Qt" / "plugins" / "platforms"
    platforms.mkdir(parents=True)
    (tmp_path / "Qt" / "lib").symlink_to(qt / "lib")
    data = real.read_bytes()
    needle = replaced + b"\0"
    assert data.count(needle) == 1 and len(replacement) <= len(replaced)
    copy = platforms / "libqxcb.so"
    copy.write_bytes(data.replace(needle, replacement + b"\0" * (len(needle) - len(replacement))))
    return copy


@linux_qt
def test_real_ldd_finds_the_missing_xcb_library(tmp_path: Path) -> None:
    real = next(path for path in qt_binaries() if path.name == "libqxcb.so")
    assert missing_libraries([real]).missing == []  # this machine has them all

    if Path("/lib/x86_64-linux-gnu/libxcb-ewmh.so.2").exists() or Path("/usr/lib/libxcb-ewmh.so.2").exists():
        pytest.skip("libxcb-ewmh2 is installed here")
    plugin = qxcb_needing(tmp_path, b"libxcb-cursor.so.0", b"libxcb-ewmh.so.2")
    libraries = missing_libraries([plugin])
    assert libraries.missing == ["libxcb-ewmh.so.2"]
    assert libraries.packages == ["libxcb-ewmh2"]


@linux_qt
def test_window_check_names_file_and_package(tmp_path: Path, fake_x_server) -> None:
    plugin = qxcb_needing(tmp_path, b"libxcb-cursor.so.0", b"libxcb-ewmh.so.2")
    with_display = window_check({"DISPLAY": fake_x_server.display}, binaries=[plugin])
    assert with_display.status == "FAIL"  # a display is there and the window will not open
    assert "libxcb-ewmh.so.2" in with_display.message
    assert "sudo apt install libxcb-ewmh2" in with_display.message + (with_display.hint or "")
    assert with_display.details["packages"] == ["libxcb-ewmh2"]

    headless = window_check({}, binaries=[plugin])
    assert headless.status == "WARN"  # no display: headless is what happens anyway

    healthy = window_check({"DISPLAY": fake_x_server.display}, binaries=qt_binaries())
    assert healthy.status == "OK" and "libraries complete" in healthy.message


def test_several_missing_libraries_become_one_install_line(tmp_path: Path, fake_x_server) -> None:
    outputs = {
        "libqxcb.so": (
            "\tlibQt6XcbQpa.so.6 => /opt/Qt/lib/libQt6XcbQpa.so.6 (0x1)\n"
            "\tlibxcb-icccm.so.4 => not found\n"
            "\tlibxcb-keysyms.so.1 => not found\n"
            "\tlibxcb-cursor.so.0 => not found\n"
            "\tlibxkbcommon-x11.so.0 => not found\n"
        ),
        "libQt6WebEngineCore.so.6": (
            "\tlibnss3.so => not found\n\tlibsmime3.so => not found\n\tlibQt6Gui.so.6 => not found\n"
        ),
    }
    binaries = [tmp_path / name for name in outputs]
    libraries = missing_libraries(binaries, ldd=lambda path: outputs[path.name])
    assert libraries.missing == [
        "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libnss3.so",
        "libsmime3.so",
    ]
    assert libraries.packages == [
        "libxcb-icccm4", "libxcb-keysyms1", "libxcb-cursor0", "libxkbcommon-x11-0", "libnss3",
    ]
    assert libraries.bundled_missing == ["libQt6Gui.so.6"]
    if importlib.util.find_spec("PySide6") is not None and importlib.util.find_spec("webview") is not None:
        check = window_check({"DISPLAY": fake_x_server.display}, ldd=lambda path: outputs[path.name],
                             binaries=binaries)
        assert "sudo apt install libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libnss3" in (
            check.message
        )
        assert "reinstall" in check.message


@pytest.mark.parametrize(
    ("soname", "package"),
    [
        ("libxcb-icccm.so.4", "libxcb-icccm4"),
        ("libxcb-render-util.so.0", "libxcb-render-util0"),
        ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0"),
        ("libX11-xcb.so.1", "libx11-xcb1"),
        ("libGL.so.1", "libgl1"),
        ("libEGL.so.1", "libegl1"),
        ("libdbus-1.so.3", "libdbus-1-3"),
        ("libnss3.so", "libnss3"),
        ("libnspr4.so", "libnspr4"),
        ("libglib-2.0.so.0", "libglib2.0-0"),
        ("libz.so.1", "zlib1g"),
    ],
)
def test_debian_package_names(soname: str, package: str) -> None:
    assert debian_package(soname) == package


@linux_qt
def test_doctor_reports_the_window_toolkit(data_dir: Path) -> None:
    settings = Settings.load(env={}, data_dir=data_dir, keyring_backend="file",
                             openrouter_base_url="http://127.0.0.1:9/api/v1", policy_file=data_dir / "none.json")
    out = io.StringIO()
    run_doctor(settings, out=out, json_output=True, env={}, timeout=0.5)
    window = {check["id"]: check for check in json.loads(out.getvalue())["checks"]}["window"]
    assert window["title"] == "Window"
    assert window["details"]["toolkit"] == "qt"
    assert window["details"]["missing_libraries"] == []
    assert any(path.endswith("libqxcb.so") for path in window["details"]["checked"])
