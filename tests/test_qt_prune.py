"""The Linux GUI bundle's pruning rules (packaging/qt_prune.py): what of Qt the window keeps."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "packaging"))

import qt_prune  # noqa: E402


def test_data_files_the_window_never_reads_are_left_out():
    keep = qt_prune.keep_data
    assert keep("frontend/static/app.css") and keep("certifi/cacert.pem")
    assert keep("PySide6/Qt/resources/qtwebengine_resources.pak") and keep("PySide6/Qt/resources/icudtl.dat")
    assert keep("PySide6/Qt/resources/v8_context_snapshot.bin")
    assert not keep("PySide6/Qt/resources/qtwebengine_devtools_resources.pak")
    assert keep("PySide6/Qt/translations/qtwebengine_locales/en-US.pak")
    assert not keep("PySide6/Qt/translations/qtwebengine_locales/de.pak")
    assert not keep("PySide6/Qt/translations/qtbase_de.qm") and not keep("PySide6/Qt/translations/qt_fr.qm")
    assert not keep("PySide6/Qt/qml/QtQuick3D/qmldir")


def test_binaries_kept_are_the_windows_modules_and_platform_plugins():
    keep = qt_prune.keep_binary
    for module in ("QtCore", "QtGui", "QtWidgets", "QtWebEngineCore", "QtWebEngineWidgets", "QtWebChannel"):
        assert keep(f"PySide6/{module}.abi3.so"), module
    assert keep("PySide6/libpyside6.abi3.so.6.12")
    assert not keep("PySide6/QtDataVisualization.abi3.so") and not keep("PySide6/QtOpenGL.abi3.so")
    assert keep("PySide6/Qt/plugins/platforms/libqxcb.so") and keep("PySide6/Qt/plugins/platforms/libqwayland.so")
    assert keep("PySide6/Qt/plugins/xcbglintegrations/libqxcb-glx-integration.so")
    assert not keep("PySide6/Qt/plugins/platformthemes/libqgtk3.so")  # would pull in GTK 3
    assert not keep("PySide6/Qt/plugins/printsupport/libcupsprintersupport.so")
    assert not keep("PySide6/Qt/plugins/qmltooling/libqmldbg_debugger.so")
    assert keep("PySide6/Qt/libexec/QtWebEngineProcess") and keep("PySide6/Qt/lib/libQt6WebEngineCore.so.6")
    assert keep("_duckdb.cpython-311-x86_64-linux-gnu.so")


def test_excluded_modules_are_every_other_pyside_module(tmp_path: Path):
    for name in ("QtCore", "QtWebEngineCore", "QtQuick3D", "QtDataVisualization"):
        (tmp_path / f"{name}.abi3.so").write_bytes(b"")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "support").mkdir()
    assert qt_prune.excluded_pyside_modules(tmp_path) == [
        "PySide6.QtDataVisualization", "PySide6.QtQuick3D", "PySide6.scripts"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF")
def test_needed_reads_the_sonames_an_elf_file_links():
    python = Path(sys.executable).resolve()
    names = qt_prune.needed(str(python))
    assert any(name.startswith("libc.so") for name in names), names
    assert qt_prune.needed(__file__) == []


def test_libraries_only_dropped_binaries_linked_are_removed(tmp_path: Path, monkeypatch):
    links = {
        "xcb-plugin": ["libQt6XcbQpa.so.6"],
        "gtk-plugin": ["libgtk-3.so.0", "libQt6Gui.so.6"],
        "libQt6XcbQpa.so.6": ["libQt6Gui.so.6"],
        "libQt6Gui.so.6": ["libglib-2.0.so.0"],
        "libgtk-3.so.0": ["libcairo.so.2", "libglib-2.0.so.0"],
    }
    files = {}
    for name in [*links, "libcairo.so.2", "libglib-2.0.so.0", "libloaded-by-ctypes.so.1"]:
        files[name] = tmp_path / name
        files[name].write_bytes(b"")
    monkeypatch.setattr(qt_prune, "needed", lambda path: links.get(Path(path).name, []))
    entry = {name: (name if name.startswith("lib") else f"PySide6/Qt/plugins/x/{name}.so", str(path), "BINARY")
             for name, path in files.items()}
    qt_lib = {name: (f"PySide6/Qt/lib/{name}", str(files[name]), "BINARY")
              for name in ("libQt6XcbQpa.so.6", "libQt6Gui.so.6")}
    kept = [entry["xcb-plugin"], qt_lib["libQt6XcbQpa.so.6"], qt_lib["libQt6Gui.so.6"], entry["libgtk-3.so.0"],
            entry["libcairo.so.2"], entry["libglib-2.0.so.0"], entry["libloaded-by-ctypes.so.1"]]
    keep, drop = qt_prune.prune_libraries(kept, [entry["gtk-plugin"]])
    assert sorted(Path(dest).name for dest, _src, _kind in drop) == ["libcairo.so.2", "libgtk-3.so.0"]
    assert entry["libloaded-by-ctypes.so.1"] in keep and entry["libglib-2.0.so.0"] in keep
    assert qt_lib["libQt6Gui.so.6"] in keep


def test_prune_drops_symlinks_to_removed_libraries(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(qt_prune, "needed", lambda path: [])
    lib = tmp_path / "libQt6Quick3D.so.6"
    shutil.copy(sys.executable, lib)
    binaries = [("PySide6/Qt/plugins/sceneparsers/libQt6Quick3D.so.6", str(lib), "BINARY")]  # a dropped dir
    datas = [("libQt6Quick3D.so.6", "PySide6/Qt/lib/libQt6Quick3D.so.6", "SYMLINK"),
             ("libQt6Core.so.6", "PySide6/Qt/lib/libQt6Core.so.6", "SYMLINK"),
             ("frontend/static/app.css", "/x/app.css", "DATA")]
    kept, kept_datas, removed = qt_prune.prune(binaries, datas)
    assert kept == [] and [d for d, _s, _k in kept_datas] == ["libQt6Core.so.6", "frontend/static/app.css"]
    assert len(removed) == 2
