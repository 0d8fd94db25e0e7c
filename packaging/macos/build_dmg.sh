#!/usr/bin/env bash
# macOS only (hdiutil, codesign, notarytool, stapler cannot run on Linux). Signs, notarizes and staples
# dist/Atelier.app, then wraps it in a signed, notarized dmg.
#
#   scripts/build_bundle.sh                       # on a Mac: dist/Atelier.app
#   export CODESIGN_IDENTITY="Developer ID Application: Example Corp (TEAMID1234)"
#   export NOTARY_PROFILE=atelier-notary          # created once with:
#       xcrun notarytool store-credentials atelier-notary --apple-id you@example.com --team-id TEAMID1234
#   packaging/macos/build_dmg.sh                  # -> dist/Atelier-<version>.dmg
#
# Without CODESIGN_IDENTITY the app is ad-hoc signed and not notarized (local testing only: Gatekeeper
# blocks it on other Macs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
APP="$ROOT/dist/Atelier.app"
ENTITLEMENTS="$ROOT/packaging/macos/entitlements.plist"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/backend/__init__.py")"
DMG="$ROOT/dist/Atelier-$VERSION.dmg"
IDENTITY="${CODESIGN_IDENTITY:--}"

[[ "$(uname)" == "Darwin" ]] || { echo "build_dmg: run this on macOS" >&2; exit 2; }
[[ -d "$APP" ]] || { echo "build_dmg: $APP not found; run scripts/build_bundle.sh first" >&2; exit 2; }

echo "==> codesign (hardened runtime, secure timestamp) with identity: $IDENTITY"
# Sign nested code first (dylibs, .so, frameworks), then the app; --deep is not used on purpose (Apple
# discourages it: each item must be signed with the right options).
find "$APP/Contents" -type f \( -name '*.dylib' -o -name '*.so' \) -print0 |
    xargs -0 codesign --force --timestamp --options runtime --sign "$IDENTITY"
find "$APP/Contents" -type d -name '*.framework' -prune -print0 |
    xargs -0 -I{} codesign --force --timestamp --options runtime --sign "$IDENTITY" {}
codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" --sign "$IDENTITY" \
    "$APP/Contents/MacOS/Atelier"
codesign --force --timestamp --options runtime --entitlements "$ENTITLEMENTS" --sign "$IDENTITY" "$APP"
codesign --verify --strict --verbose=2 "$APP"

if [[ "$IDENTITY" != "-" ]]; then
    echo "==> notarize the app"
    ditto -c -k --keepParent "$APP" "$ROOT/dist/Atelier-notarize.zip"
    xcrun notarytool submit "$ROOT/dist/Atelier-notarize.zip" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$APP"
    rm -f "$ROOT/dist/Atelier-notarize.zip"
fi

echo "==> dmg"
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
rm -f "$DMG"
hdiutil create -volname "Atelier $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"

if [[ "$IDENTITY" != "-" ]]; then
    codesign --force --timestamp --sign "$IDENTITY" "$DMG"
    xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose "$DMG"
fi
echo "built $DMG"
