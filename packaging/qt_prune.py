"""What of PySide6 / Qt WebEngine the Linux GUI bundle keeps (used by build.spec).

PyInstaller's Qt hooks collect far more than the window loads: every QML module (with the Quick 3D,
Controls, Charts… libraries their plugins link), all of Qt's translations, Chromium's locales for 50
languages, the developer tools' resources, and every plugin directory with the system libraries those
plugins pull in (GTK 3 for the GTK platform theme, CUPS for printing, PulseAudio…). The window needs
(docs/performance.md, "Bundle"): the Python modules qtpy and pywebview's Qt backend import, the Qt
libraries those link (QtWebEngineCore links QtQuick/QtQml, so those stay), the xcb/Wayland platform
plugins, Qt WebEngine's resources, ICU data, and Chromium's en-US locale.

Everything here is pure: it takes and returns PyInstaller TOC lists of ``(dest, src, typecode)``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import PurePosixPath

#: PySide6 modules imported at run time: qtpy's QtCore/QtGui/QtWidgets and pywebview's Qt backend
#: (QtNetwork, QtWebChannel, QtWebEngineCore/Widgets, which import QtPrintSupport). qtpy also tries
#: QtOpenGL, QtOpenGLWidgets and QtDataVisualization and does without them.
PYSIDE_MODULES = frozenset({
    "QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtPrintSupport",
    "QtWebChannel", "QtWebEngineCore", "QtWebEngineWidgets",
})

#: Plugin directories (under ``PySide6/Qt/plugins``) the window can load: X11 and Wayland.
PLUGIN_DIRS = frozenset({
    "platforms", "xcbglintegrations", "platforminputcontexts", "platformthemes", "tls",
    "wayland-shell-integration", "wayland-decoration-client", "wayland-graphics-integration-client",
})
#: Within those, plugins a desktop window never uses: other platforms, GTK 3's theme (it pulls in GTK),
#: Qt's QML virtual keyboard, and the compositor side of Wayland's buffer sharing.
DROPPED_PLUGINS = frozenset({
    "libqgtk3.so", "libqlinuxfb.so", "libqvnc.so", "libqvkkhrdisplay.so", "libqminimal.so",
    "libqeglfs.so", "libqminimalegl.so", "libqtvirtualkeyboardplugin.so",
    "libdmabuf-server.so", "libdrm-egl-server.so", "libshm-emulation-server.so", "libvulkan-server.so",
})

#: Chromium's locale kept: its fallback for every other language.
LOCALES = frozenset({"en-US.pak"})

QT = "PySide6/Qt/"


def excluded_pyside_modules(pyside_dir: str | os.PathLike[str]) -> list[str]:
    """``PySide6.<name>`` for every module or tool package in ``pyside_dir`` the window never imports."""
    names = set()
    for entry in os.listdir(pyside_dir):
        if entry.endswith(".abi3.so"):
            names.add(entry.split(".", 1)[0])
        elif entry in ("QtAsyncio", "scripts"):
            names.add(entry)
    return [f"PySide6.{name}" for name in sorted(names - PYSIDE_MODULES)]


def keep_data(dest: str) -> bool:
    """Whether a data file of the bundle is needed by the window."""
    path = PurePosixPath(dest.replace("\\", "/"))
    text = path.as_posix()
    if not text.startswith(QT):
        return True
    parts = path.parts[2:]  # after PySide6/Qt
    if parts[:1] == ("qml",):
        return False
    if parts[:1] == ("translations",):
        # Qt's own .qm files (the UI is English) and every Chromium locale but the fallback.
        return parts[1:2] == ("qtwebengine_locales",) and path.name in LOCALES
    if parts[:1] == ("resources",):
        return "devtools" not in path.name  # the developer tools never open in a packaged build
    return True


def keep_binary(dest: str) -> bool:
    """Whether a binary is needed, before the library closure (:func:`prune_libraries`)."""
    path = PurePosixPath(dest.replace("\\", "/"))
    text = path.as_posix()
    if text.startswith(QT + "plugins/"):
        return path.parts[3] in PLUGIN_DIRS and path.name not in DROPPED_PLUGINS
    if text.startswith(QT + "qml/"):
        return False
    if len(path.parts) == 2 and path.parts[0] == "PySide6" and path.name.endswith(".abi3.so"):
        return path.name.split(".", 1)[0] in PYSIDE_MODULES or path.name.startswith("lib")
    return True


def needed(path: str) -> list[str]:
    """The ``DT_NEEDED`` entries of a 64-bit little-endian ELF file (the sonames it links), or [] if none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return []
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQII", data, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for _name, kind, _flags, _addr, offset, size, link, _info in sections:
        if kind != 6:  # SHT_DYNAMIC
            continue
        strtab = sections[link][4]
        for i in range(0, size, 16):
            tag, value = struct.unpack_from("<qQ", data, offset + i)
            if tag == 0:
                break
            if tag == 1:  # DT_NEEDED
                end = data.index(b"\0", strtab + value)
                names.append(data[strtab + value:end].decode())
    return names


def _prunable(dest: str) -> bool:
    """Shared libraries the closure may remove: Qt's and system ones at the top level, never libpython."""
    path = PurePosixPath(dest.replace("\\", "/"))
    name = path.name
    if not (name.startswith("lib") and ".so" in name) or name.startswith(("libpython", "libpyside", "libshiboken")):
        return False
    return len(path.parts) == 1 or path.as_posix().startswith(QT + "lib/")


def _closure(roots: Iterable[str], files: dict[str, str]) -> set[str]:
    """Sonames reachable from the files ``roots`` through ``DT_NEEDED``; ``files`` maps soname → path."""
    seen: set[str] = set()
    todo = [name for root in roots for name in needed(root)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in files:
            todo += needed(files[name])
    return seen


def prune_libraries(kept: list[tuple], dropped: list[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Drop the shared libraries only the ``dropped`` binaries needed. Returns (kept, also dropped).

    A library is removed when nothing kept links it (directly or not) and something dropped did; a library
    no binary links (say one Python loads with ctypes) is left alone.
    """
    files = {}
    for dest, src, kind in kept + dropped:
        if kind != "SYMLINK" and os.path.isfile(src):
            files.setdefault(PurePosixPath(dest.replace("\\", "/")).name, src)
    roots = [src for dest, src, kind in kept if kind != "SYMLINK" and not _prunable(dest)]
    reachable = _closure(roots, files)
    orphaned = _closure([src for _dest, src, kind in dropped if kind != "SYMLINK"], files) - reachable
    keep, drop = [], []
    for entry in kept:
        name = PurePosixPath(entry[0].replace("\\", "/")).name
        (drop if _prunable(entry[0]) and name in orphaned else keep).append(entry)
    return keep, drop


def prune(binaries: list[tuple], datas: list[tuple]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """The bundle's binaries and datas without what the window never loads, and the list removed."""
    kept = [entry for entry in binaries if keep_binary(entry[0])]
    dropped = [entry for entry in binaries if not keep_binary(entry[0])]
    kept, orphans = prune_libraries(kept, dropped)
    # Symbolic links (PyInstaller links Qt's libraries into the top level) go with what they point to.
    gone = {PurePosixPath(d.replace("\\", "/")).name for d, _s, _k in dropped + orphans}
    kept_datas = [entry for entry in datas if keep_data(entry[0])
                  and not (entry[2] == "SYMLINK" and PurePosixPath(entry[0]).name in gone)]
    kept = [entry for entry in kept if not (entry[2] == "SYMLINK" and PurePosixPath(entry[0]).name in gone)]
    removed = dropped + orphans + [entry for entry in datas if entry not in kept_datas]
    return kept, kept_datas, removed
