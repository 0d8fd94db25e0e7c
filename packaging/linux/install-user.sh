#!/bin/sh
# Per-user install from the tarball, no root needed:
#   tar xf atelier-<version>-linux-<arch>.tar.gz && ./atelier-<version>/install-user.sh
#   ./atelier-<version>/install-user.sh --uninstall
# Installs to ~/.local/opt/atelier, links ~/.local/bin/atelier, adds a menu entry and icons.
# Uninstall removes only those; your data (~/.local/share/Atelier) stays.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX="${XDG_DATA_HOME:-$HOME/.local/share}"
OPT="$HOME/.local/opt/atelier"
BIN="$HOME/.local/bin"

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$OPT" "$BIN/atelier" "$PREFIX/applications/atelier.desktop"
    for size in 16 32 48 64 128 256 512; do rm -f "$PREFIX/icons/hicolor/${size}x${size}/apps/atelier.png"; done
    echo "Atelier removed (your data in ${XDG_DATA_HOME:-$HOME/.local/share}/Atelier was kept)."
    exit 0
fi

rm -rf "$OPT"
mkdir -p "$OPT" "$BIN" "$PREFIX/applications"
cp -a "$HERE/Atelier/." "$OPT/"
ln -sf "$OPT/Atelier" "$BIN/atelier"
sed "s|^Exec=atelier|Exec=$OPT/Atelier|; s|^TryExec=atelier|TryExec=$OPT/Atelier|" \
    "$HERE/share/applications/atelier.desktop" > "$PREFIX/applications/atelier.desktop"
for size in 16 32 48 64 128 256 512; do
    mkdir -p "$PREFIX/icons/hicolor/${size}x${size}/apps"
    cp "$HERE/share/icons/atelier-$size.png" "$PREFIX/icons/hicolor/${size}x${size}/apps/atelier.png"
done
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$PREFIX/applications" || true
echo "Atelier installed in $OPT; run 'atelier' (make sure $BIN is on your PATH)."
