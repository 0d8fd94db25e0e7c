#!/usr/bin/env bash
# Build the one-folder PyInstaller bundle (dist/Atelier) from a clean virtual environment with pinned
# versions (packaging/constraints.txt), so nothing from the development environment leaks in.
#
#   scripts/build_bundle.sh                 # headless bundle (no Qt; the app opens the system browser)
#   ATELIER_BUNDLE_GUI=1 scripts/build_bundle.sh   # Linux: include PySide6 + Qt WebEngine for the window
#
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3), ATELIER_BUILD_DIR (default
# build/bundle), ATELIER_DIST_DIR (default dist). pip's own configuration (e.g. a global constraints file in
# /etc/xdg/pip) still applies; ours is added with -c.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${ATELIER_BUILD_DIR:-$ROOT/build/bundle}"
DIST_DIR="${ATELIER_DIST_DIR:-$ROOT/dist}"
GUI="${ATELIER_BUNDLE_GUI:-0}"

if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$(command -v python3.11 || command -v python3 || true)"
fi
if [[ -z "$PYTHON" ]] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "build_bundle: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
    exit 2
fi

started=$(date +%s)
echo "==> clean virtual environment in $BUILD_DIR/venv ($("$PYTHON" --version))"
rm -rf "$BUILD_DIR/venv" "$BUILD_DIR/work"
mkdir -p "$BUILD_DIR" "$DIST_DIR"
"$PYTHON" -m venv "$BUILD_DIR/venv"
VPY="$BUILD_DIR/venv/bin/python"
[[ -x "$VPY" ]] || VPY="$BUILD_DIR/venv/Scripts/python.exe"  # Git Bash on Windows

# Requirements straight from pyproject.toml (runtime + build, + gui when asked), pinned by constraints.txt.
"$VPY" - "$ROOT/pyproject.toml" "$GUI" > "$BUILD_DIR/requirements.txt" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
requirements = list(project["dependencies"]) + list(project["optional-dependencies"]["build"])
if sys.argv[2] == "1":
    requirements += project["optional-dependencies"]["gui"]
print("\n".join(requirements))
PY
echo "==> installing pinned dependencies (GUI=$GUI)"
"$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$VPY" -m pip install --quiet --disable-pip-version-check \
    -r "$BUILD_DIR/requirements.txt" -c "$ROOT/packaging/constraints.txt"
if [[ "$GUI" != "1" ]] && "$VPY" -c 'import PySide6' 2>/dev/null; then
    echo "build_bundle: PySide6 ended up in the headless build venv; refusing to build" >&2
    exit 1
fi

echo "==> pyinstaller build.spec"
rm -rf "$DIST_DIR/Atelier" "$DIST_DIR/Atelier.app"
(cd "$ROOT" && "$VPY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --workpath "$BUILD_DIR/work" --distpath "$DIST_DIR" build.spec)

BUNDLE="$DIST_DIR/Atelier"
EXE="$BUNDLE/Atelier"
[[ -x "$EXE" ]] || EXE="$BUNDLE/atelier-cli.exe"
echo "==> built $BUNDLE in $(( $(date +%s) - started )) s"
echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($(du -sb "$BUNDLE" 2>/dev/null | cut -f1 || echo '?') bytes)"
"$EXE" --version
