"""Packaging recipes: the PyInstaller spec, the .desktop entry, the Inno Setup script, the .deb build."""

from __future__ import annotations

import ast
import configparser
import plistlib
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"


def test_build_spec_parses_and_names_datas_hiddenimports_and_excludes():
    source = (ROOT / "build.spec").read_text(encoding="utf-8")
    tree = ast.parse(source)
    strings = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert {"frontend/templates", "frontend/static"} <= strings
    assert {"keyring.backends.SecretService", "keyring.backends.Windows", "keyring.backends.macOS"} <= strings
    assert {"tkinter", "PyQt5", "PyQt6", "gi"} <= strings
    assert "Atelier" in strings and "atelier.ico" in strings and "atelier.icns" in strings
    calls = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert {"Analysis", "PYZ", "EXE", "COLLECT", "BUNDLE", "collect_submodules"} <= calls
    assert 'collect_submodules("uvicorn")' in source
    # NetworkManager's signals (backend/outbox/netchange.py) import jeepney inside a function: bundled by name.
    assert 'collect_submodules("jeepney")' in source
    assert (PACKAGING / "entry.py").is_file()
    assert (ROOT / "frontend" / "templates").is_dir() and (ROOT / "frontend" / "static").is_dir()


def test_windows_version_resource_template_fills_in():
    template = (PACKAGING / "windows" / "version_info.txt.in").read_text(encoding="utf-8")
    text = template.format(major=1, minor=2, patch=3, version="1.2.3", exe_name="Atelier")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    tree = ast.parse(body, mode="eval")
    assert isinstance(tree.body, ast.Call) and tree.body.func.id == "VSVersionInfo"
    assert "filevers=(1, 2, 3, 0)" in text and "'ProductVersion', '1.2.3'" in text


def test_constraints_pin_every_runtime_dependency():
    pins = {}
    for line in (PACKAGING / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["gui"]
    wanted += project["optional-dependencies"]["build"]
    for requirement in wanted:
        name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
        assert re.sub(r"[-_.]+", "-", name).lower() in pins, f"{name} is not pinned"


def test_icons_exist_in_every_format():
    with Image.open(PACKAGING / "icons" / "atelier.png") as png:
        assert png.size == (1024, 1024) and png.mode == "RGBA"
    with Image.open(PACKAGING / "icons" / "atelier.ico") as ico:
        assert (256, 256) in ico.info["sizes"] and (16, 16) in ico.info["sizes"]
    with Image.open(PACKAGING / "icons" / "atelier.icns") as icns:
        assert icns.format == "ICNS"
    for size in (16, 32, 48, 64, 128, 256, 512):
        with Image.open(PACKAGING / "icons" / f"atelier-{size}.png") as image:
            assert image.size == (size, size)


def test_desktop_entry_keys():
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are case-sensitive
    parser.read(PACKAGING / "linux" / "atelier.desktop", encoding="utf-8")
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "Atelier"
    assert entry["Exec"] == "atelier"
    assert entry["Icon"] == "atelier"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";") and "Graphics" in entry["Categories"].split(";")
    assert entry["StartupWMClass"] == "Atelier"
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run(
            [validator, str(PACKAGING / "linux" / "atelier.desktop")], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_inno_setup_script_has_both_install_modes_silent_flags_webview2_and_policy():
    iss = (PACKAGING / "windows" / "atelier.iss").read_text(encoding="utf-8")
    assert re.search(r"^PrivilegesRequired=lowest$", iss, re.MULTILINE)
    assert re.search(r"^PrivilegesRequiredOverridesAllowed=dialog commandline$", iss, re.MULTILINE)
    assert re.search(r"^DefaultDirName=\{autopf\}\\\{#AppName\}$", iss, re.MULTILINE)
    for flag in ("/VERYSILENT", "/SUPPRESSMSGBOXES", "/NORESTART", "/ALLUSERS", "/CURRENTUSER"):
        assert flag in iss
    # WebView2: registry detection of the Evergreen runtime, bootstrapper or instructions.
    assert "{F3017226-FE2A-4295-8BDF-00C3A9A7E4C5}" in iss
    assert "MicrosoftEdgeWebview2Setup.exe" in iss and "NeedsWebView2" in iss
    # Optional policy deployment to %ProgramData%\Atelier\policy.json, kept on uninstall.
    assert '{commonappdata}\\Atelier"; DestName: "policy.json"' in iss
    assert "uninsneveruninstall" in iss
    assert 'Source: "{#BundleDir}\\*"' in iss


def test_macos_plists():
    info = plistlib.loads((PACKAGING / "macos" / "Info.plist").read_bytes())
    assert info["CFBundleExecutable"] == "Atelier"
    assert info["CFBundleIdentifier"] == "studio.atelier.Atelier"
    assert info["NSAppTransportSecurity"]["NSAllowsLocalNetworking"] is True
    entitlements = plistlib.loads((PACKAGING / "macos" / "entitlements.plist").read_bytes())
    assert entitlements["com.apple.security.cs.disable-library-validation"] is True
    script = (PACKAGING / "macos" / "build_dmg.sh").read_text(encoding="utf-8")
    for step in ("codesign", "--options runtime", "notarytool submit", "stapler staple", "hdiutil create"):
        assert step in script


@pytest.fixture
def fake_bundle(tmp_path: Path) -> Path:
    """A stand-in for dist/Atelier: an executable that answers --version, plus an _internal folder."""
    bundle = tmp_path / "Atelier"
    (bundle / "_internal" / "frontend" / "static").mkdir(parents=True)
    (bundle / "_internal" / "frontend" / "static" / "app.css").write_text("body{}", encoding="utf-8")
    exe = bundle / "Atelier"
    exe.write_text('#!/bin/sh\necho "Atelier 0.1.0 $*"\n', encoding="utf-8")
    exe.chmod(0o755)
    return bundle


def build_deb(bundle: Path, out: Path) -> Path:
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_deb.sh"), str(bundle), str(out)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "ATELIER_DEB_ARCH": "amd64"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    deb = Path(result.stdout.strip().splitlines()[-1])
    assert deb.is_file() and deb.parent == out
    return deb


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_deb_from_a_fake_bundle(fake_bundle, tmp_path):
    deb = build_deb(fake_bundle, tmp_path / "out")
    assert deb.name == "atelier_0.1.0_amd64.deb"
    info = subprocess.run(["dpkg-deb", "--info", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: atelier" in info and "Version: 0.1.0" in info and "Architecture: amd64" in info
    assert "Depends: libc6" in info and "libnss3" not in info  # a headless bundle needs no Qt libraries
    contents = subprocess.run(
        ["dpkg-deb", "--contents", str(deb)], capture_output=True, text=True, check=True
    ).stdout
    entries = {line.split()[-1]: line for line in contents.splitlines()}
    for path in (
        "./usr/bin/atelier",
        "./opt/atelier/Atelier",
        "./opt/atelier/_internal/frontend/static/app.css",
        "./usr/share/applications/atelier.desktop",
        "./usr/share/icons/hicolor/256x256/apps/atelier.png",
        "./usr/share/icons/hicolor/16x16/apps/atelier.png",
        "./usr/share/doc/atelier/copyright",
        "./usr/share/doc/atelier/policy.example.json",
    ):
        assert path in entries, f"{path} missing from the .deb"
        assert "root/root" in entries[path]
    assert entries["./usr/bin/atelier"].startswith("-rwxr-xr-x")
    assert entries["./opt/atelier/Atelier"].startswith("-rwxr-xr-x")

    # The wrapper starts the bundle under /opt/atelier.
    extracted = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(extracted)], check=True)
    wrapper = (extracted / "usr" / "bin" / "atelier").read_text(encoding="utf-8")
    assert 'exec /opt/atelier/Atelier "$@"' in wrapper
    control = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Installed-Size"], capture_output=True, text=True, check=True
    ).stdout
    assert int(control) > 0


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")
def test_deb_of_a_gui_bundle_depends_on_the_qt_webengine_libraries(fake_bundle, tmp_path):
    (fake_bundle / "_internal" / "PySide6").mkdir()
    deb = build_deb(fake_bundle, tmp_path / "out")
    depends = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    for library in ("libnss3", "libxkbcommon-x11-0", "libegl1", "libgbm1", "libxcb-cursor0"):
        assert library in depends


def test_deb_build_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build_deb.sh"), str(tmp_path), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "is not an executable bundle" in result.stderr


def test_tarball_recipe_and_per_user_install(fake_bundle, tmp_path):
    result = subprocess.run(
        ["bash", str(PACKAGING / "linux" / "make_tarball.sh"), str(fake_bundle), str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    tarball = Path(result.stdout.strip().splitlines()[-1])
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
        archive.extractall(tmp_path / "unpacked", filter="data")
    top = "atelier-0.1.0"
    assert f"{top}/Atelier/Atelier" in names and f"{top}/install-user.sh" in names
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    installer = tmp_path / "unpacked" / top / "install-user.sh"
    subprocess.run(["sh", str(installer)], env=env, check=True, capture_output=True)
    launcher = home / ".local" / "bin" / "atelier"
    version = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("Atelier 0.1.0")
    desktop = (home / ".local" / "share" / "applications" / "atelier.desktop").read_text(encoding="utf-8")
    assert f"Exec={home}/.local/opt/atelier/Atelier" in desktop
    data = home / ".local" / "share" / "Atelier"
    data.mkdir()
    subprocess.run(["sh", str(installer), "--uninstall"], env=env, check=True, capture_output=True)
    assert not launcher.exists() and not (home / ".local" / "opt" / "atelier").exists()
    assert data.is_dir()  # user data is kept


def test_shell_scripts_are_valid_bash():
    for script in (
        "scripts/build_bundle.sh",
        "scripts/build_deb.sh",
        "scripts/ci_bundle_smoke.sh",
        "packaging/linux/make_tarball.sh",
        "packaging/macos/build_dmg.sh",
    ):
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True)
        assert (ROOT / script).stat().st_mode & 0o111, f"{script} is not executable"
    for script in (
        "packaging/linux/install-user.sh",
        "packaging/linux/atelier.sh",
        "packaging/linux/postinst",
        "packaging/linux/postrm",
    ):
        subprocess.run(["sh", "-n", str(ROOT / script)], check=True)
