#!/usr/bin/env bash
# Build a .deb from a PyInstaller one-folder bundle with standard tools (dpkg-deb).
#
#   scripts/build_deb.sh [BUNDLE_DIR [OUT_DIR]]     # defaults: dist/Atelier, dist
#
# Layout: /opt/atelier (the bundle), /usr/bin/atelier (wrapper), /usr/share/applications/atelier.desktop,
# /usr/share/icons/hicolor/<size>/apps/atelier.png, /usr/share/doc/atelier/{copyright,policy.example.json}.
# Depends lists the Qt WebEngine runtime libraries when the bundle contains PySide6 (the window); a headless
# bundle only recommends xdg-utils (it opens the system browser).
# Environment: ATELIER_VERSION (default: backend/__init__.py), ATELIER_DEB_ARCH (default: dpkg's).
# Prints the path of the .deb on the last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUNDLE="$(cd "${1:-$ROOT/dist/Atelier}" && pwd)"
OUT_DIR="${2:-$ROOT/dist}"
LINUX="$ROOT/packaging/linux"
ICONS="$ROOT/packaging/icons"

[[ -x "$BUNDLE/Atelier" ]] || { echo "build_deb: $BUNDLE/Atelier is not an executable bundle" >&2; exit 2; }
command -v dpkg-deb >/dev/null || { echo "build_deb: dpkg-deb is required" >&2; exit 2; }

VERSION="${ATELIER_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/backend/__init__.py")}"
ARCH="${ATELIER_DEB_ARCH:-$(dpkg --print-architecture)}"
[[ -n "$VERSION" ]] || { echo "build_deb: cannot read the version" >&2; exit 2; }

QT_DEPENDS="libnss3, libxkbcommon-x11-0, libegl1, libgl1, libgbm1, libxcb-cursor0, libxcb-icccm4, libxcb-image0, \
libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, libxcb-shape0, libxcb-xinerama0, libxcb-xkb1, libxkbfile1, \
libxcomposite1, libxdamage1, libxrandr2, libxtst6, libasound2 | libasound2t64, libdbus-1-3, libfontconfig1"
DEPENDS="libc6 (>= 2.31), zlib1g"
RECOMMENDS="xdg-utils, gnome-keyring | kwalletmanager | keepassxc"
if [[ -d "$BUNDLE/_internal/PySide6" || -d "$BUNDLE/PySide6" ]]; then
    DEPENDS="$DEPENDS, $QT_DEPENDS"
fi

umask 022
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
PKG="$STAGE/atelier_${VERSION}_${ARCH}"
mkdir -p "$PKG/DEBIAN" "$PKG/opt" "$PKG/usr/bin" "$PKG/usr/share/applications" "$PKG/usr/share/doc/atelier"

cp -a "$BUNDLE" "$PKG/opt/atelier"
chmod -R u+rwX,go+rX,go-w "$PKG/opt/atelier"
install -m 0755 "$LINUX/atelier.sh" "$PKG/usr/bin/atelier"
install -m 0644 "$LINUX/atelier.desktop" "$PKG/usr/share/applications/atelier.desktop"
for size in 16 32 48 64 128 256 512; do
    install -D -m 0644 "$ICONS/atelier-$size.png" "$PKG/usr/share/icons/hicolor/${size}x${size}/apps/atelier.png"
done
install -m 0644 "$LINUX/copyright" "$PKG/usr/share/doc/atelier/copyright"
install -m 0644 "$ROOT/packaging/policy.example.json" "$PKG/usr/share/doc/atelier/policy.example.json"
install -m 0755 "$LINUX/postinst" "$PKG/DEBIAN/postinst"
install -m 0755 "$LINUX/postrm" "$PKG/DEBIAN/postrm"

INSTALLED_SIZE="$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@INSTALLED_SIZE@/$INSTALLED_SIZE/" \
    -e "s/@DEPENDS@/$DEPENDS/" -e "s/@RECOMMENDS@/$RECOMMENDS/" "$LINUX/control.in" > "$PKG/DEBIAN/control"

mkdir -p "$OUT_DIR"
DEB="$(cd "$OUT_DIR" && pwd)/atelier_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "built $DEB ($(du -h "$DEB" | cut -f1))"
echo "$DEB"
