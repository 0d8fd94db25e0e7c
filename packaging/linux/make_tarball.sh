#!/usr/bin/env bash
# Portable tarball recipe (any glibc Linux, no root): the bundle plus a per-user installer.
#   packaging/linux/make_tarball.sh [BUNDLE_DIR [OUT_DIR]]   # defaults: dist/Atelier, dist
# -> dist/atelier-<version>-linux-<arch>.tar.gz containing atelier-<version>/{Atelier/,install-user.sh,share/}
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUNDLE="$(cd "${1:-$ROOT/dist/Atelier}" && pwd)"
OUT_DIR="${2:-$ROOT/dist}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/backend/__init__.py")"
ARCH="$(uname -m)"
[[ -x "$BUNDLE/Atelier" ]] || { echo "make_tarball: $BUNDLE/Atelier is not an executable bundle" >&2; exit 2; }

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
TOP="$STAGE/atelier-$VERSION"
mkdir -p "$TOP/share/applications" "$TOP/share/icons"
cp -a "$BUNDLE" "$TOP/Atelier"
install -m 0755 "$ROOT/packaging/linux/install-user.sh" "$TOP/install-user.sh"
install -m 0644 "$ROOT/packaging/linux/atelier.desktop" "$TOP/share/applications/atelier.desktop"
for size in 16 32 48 64 128 256 512; do
    install -m 0644 "$ROOT/packaging/icons/atelier-$size.png" "$TOP/share/icons/atelier-$size.png"
done
install -m 0644 "$ROOT/packaging/policy.example.json" "$TOP/policy.example.json"
mkdir -p "$OUT_DIR"
TARBALL="$(cd "$OUT_DIR" && pwd)/atelier-$VERSION-linux-$ARCH.tar.gz"
tar -C "$STAGE" --owner=0 --group=0 -czf "$TARBALL" "atelier-$VERSION"
echo "$TARBALL"
