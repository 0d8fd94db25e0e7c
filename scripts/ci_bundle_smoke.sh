#!/usr/bin/env bash
# CI: build the frozen Linux bundle from a clean venv and smoke-test it for real, then the .deb.
#
#  1. scripts/build_bundle.sh (headless) -> dist/Atelier
#  2. start the fake OpenRouter (tests/fakes/openrouter.py) on loopback
#  3. start the frozen app `--no-window` with a temp data dir against the fake; wait for runtime.json;
#     GET /api/v1/health; one text generation through POST /api/v1/generations; GET /api/v1/diagnostics;
#     `Atelier doctor --json` (must exit 0 while the app runs and never print the key); SIGTERM; check a
#     clean exit (status 0, runtime.json removed, no .wal left)
#  3b. with GUI=1 (a bundle built with ATELIER_BUNDLE_GUI=1): start the frozen app with its window under
#     xvfb-run, wait until the window has loaded the UI (the log's "window: first page loaded"), SIGTERM, clean
#     exit. About 1.5 minutes more than the headless smoke (a larger build); not run by CI by default.
#  4. scripts/build_deb.sh; dpkg -i; /usr/bin/atelier --version; dpkg -r (needs root, skipped otherwise;
#     the package is purged afterwards so the machine is left as it was)
#  5. print bundle size, .deb size, build time and frozen start-up time (for docs/performance.md)
#
# CI: `PYTHON=.venv/bin/python scripts/ci_bundle_smoke.sh` (about 1.5 minutes on 2 cores; needs network
# access to the package index, or pip configured with a local mirror, for the clean build venv).
# Environment: PYTHON (builds the venv, runs the fake and parses JSON; default: python3), SKIP_BUILD=1 to
# reuse dist/Atelier, SKIP_DEB=1 to stop after the bundle checks, GUI=1 for the GUI bundle and its window, ATELIER_DIST_DIR / ATELIER_BUILD_DIR as
# for build_bundle.sh. Exit status non-zero on the first failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
DIST="${ATELIER_DIST_DIR:-$ROOT/dist}"
BUNDLE="$DIST/Atelier"
KEY="sk-or-v1-ci-smoke-$(date +%s)-do-not-print"
WORK="$(mktemp -d)"
DATA="$WORK/data"
APP_PID=""
FAKE_PID=""
GUI_APP_PID=""
XVFB_PID=""

log() { printf '==> %s\n' "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; [[ -f "$WORK/app.log" ]] && sed 's/^/  app| /' "$WORK/app.log" >&2; exit 1; }
cleanup() {
    [[ -n "$APP_PID" ]] && kill -KILL "$APP_PID" 2>/dev/null || true
    [[ -n "$FAKE_PID" ]] && kill -TERM "$FAKE_PID" 2>/dev/null || true
    [[ -n "$GUI_APP_PID" ]] && kill -KILL "$GUI_APP_PID" 2>/dev/null || true
    [[ -n "$XVFB_PID" ]] && kill -TERM "$XVFB_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
json_get() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

smoke_started=$(date +%s)
build_s="reused"
if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
    log "building the bundle"
    build_started=$(date +%s)
    # The global pip configuration may name index folders that do not exist here; that noise hides nothing.
    set +e
    ATELIER_BUNDLE_GUI="${GUI:-0}" ATELIER_DIST_DIR="$DIST" PYTHON="$PY" "$ROOT/scripts/build_bundle.sh" 2>&1 \
        | grep -v "^WARNING: Location '"
    build_status=${PIPESTATUS[0]}
    set -e
    [[ "$build_status" == "0" ]] || fail "the bundle build failed (status $build_status)"
    build_s=$(( $(date +%s) - build_started ))
fi
[[ -x "$BUNDLE/Atelier" ]] || fail "$BUNDLE/Atelier not found"
"$BUNDLE/Atelier" --version | grep -q "^Atelier " || fail "--version"
# NetworkManager's signals (backend/outbox/netchange.py) import jeepney inside a function: check it was bundled
# (module names are stored uncompressed in the archive's table of contents).
grep -a -q "jeepney.io.asyncio" "$BUNDLE/Atelier" || fail "jeepney.io.asyncio is not in the bundle (build.spec)"

log "starting the fake OpenRouter"
(cd "$ROOT" && exec "$PY" -m tests.fakes.openrouter --port 0 --key "$KEY") > "$WORK/fake.json" 2> "$WORK/fake.log" &
FAKE_PID=$!
for _ in $(seq 100); do [[ -s "$WORK/fake.json" ]] && break; sleep 0.1; done
[[ -s "$WORK/fake.json" ]] || fail "the fake OpenRouter did not start: $(cat "$WORK/fake.log")"
BASE_URL="$(json_get "$WORK/fake.json" base_url)"

# A hermetic environment: temp data dir, file key storage, no policy, no proxies, no display.
run_env=(env -i "PATH=$PATH" "HOME=$WORK/home" "LANG=C.UTF-8" "ATELIER_DATA_DIR=$DATA" "ATELIER_KEYRING_BACKEND=file"
         "ATELIER_POLICY_FILE=$WORK/no-policy.json" "ATELIER_OPENROUTER_BASE_URL=$BASE_URL" "ATELIER_NO_BROWSER=1"
         "OPENROUTER_API_KEY=$KEY")
mkdir -p "$WORK/home"

log "starting the frozen app headless"
start_ns=$(date +%s%N)
"${run_env[@]}" "$BUNDLE/Atelier" --no-window > "$WORK/app.log" 2>&1 &
APP_PID=$!
for _ in $(seq 600); do
    [[ -s "$DATA/runtime.json" ]] && break
    kill -0 "$APP_PID" 2>/dev/null || fail "the app exited during start-up"
    sleep 0.05
done
[[ -s "$DATA/runtime.json" ]] || fail "runtime.json did not appear"
API_URL="$(json_get "$DATA/runtime.json" api_url)"
TOKEN="$(json_get "$DATA/runtime.json" token)"
curl -fsS "$API_URL/api/v1/health" > "$WORK/health.json" || fail "health"
startup_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))
grep -q '"status":"ok"\|"status": "ok"' "$WORK/health.json" || fail "health answered $(cat "$WORK/health.json")"
log "healthy after ${startup_ms} ms"

log "one text generation"
code=$(curl -sS -o "$WORK/gen.json" -w '%{http_code}' -X POST "$API_URL/api/v1/generations" \
    -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    -d '{"kind": "text", "model": "openai/gpt-4o-mini", "prompt": "Say hello from the frozen build"}')
[[ "$code" == "201" ]] || fail "generation answered HTTP $code: $(cat "$WORK/gen.json")"
[[ "$(json_get "$WORK/gen.json" status)" == "succeeded" ]] || fail "generation: $(cat "$WORK/gen.json")"
grep -q "Echo: Say hello from the frozen build" "$WORK/gen.json" || fail "unexpected output: $(cat "$WORK/gen.json")"

log "diagnostics API"
curl -fsS "$API_URL/api/v1/diagnostics" -H "Authorization: Bearer $TOKEN" > "$WORK/diagnostics.json" \
    || fail "GET /api/v1/diagnostics"
"$PY" - "$WORK/diagnostics.json" <<'PY' || fail "diagnostics: $(cat "$WORK/diagnostics.json")"
import json, sys
report = json.load(open(sys.argv[1]))
checks = {c["id"]: c["status"] for c in report["checks"]}
assert report["ok"] is True, report
assert checks["instance"] == "ok" and checks["openrouter"] == "ok" and checks["api_key"] == "ok", checks
PY
if grep -q "$KEY" "$WORK/diagnostics.json"; then fail "the diagnostics API returned the key"; fi

log "doctor while the app runs"
set +e
"${run_env[@]}" "$BUNDLE/Atelier" doctor --json > "$WORK/doctor.json" 2> "$WORK/doctor.err"
doctor_status=$?
set -e
[[ "$doctor_status" == "0" ]] || fail "doctor exited $doctor_status: $(cat "$WORK/doctor.json" "$WORK/doctor.err")"
if grep -q "$KEY" "$WORK/doctor.json" "$WORK/doctor.err" "$WORK/app.log"; then fail "the key was printed"; fi
"$PY" - "$WORK/doctor.json" <<'PY' || fail "doctor report"
import json, sys
report = json.load(open(sys.argv[1]))
checks = {c["id"]: c["status"] for c in report["checks"]}
assert report["exit_code"] == 0, report
assert checks["instance"] == "OK" and checks["openrouter"] == "OK" and checks["api_key"] == "OK", checks
PY

log "SIGTERM"
kill -TERM "$APP_PID"
set +e
wait "$APP_PID"
app_status=$?
set -e
APP_PID=""
[[ "$app_status" == "0" ]] || fail "the app exited with status $app_status after SIGTERM"
[[ ! -e "$DATA/runtime.json" ]] || fail "runtime.json was left behind"
[[ ! -e "$DATA/atelier.duckdb.wal" ]] || fail "a .wal was left behind (no CHECKPOINT on exit)"
log "clean exit"

if [[ "${GUI:-0}" == "1" ]]; then
    log "the window under Xvfb"
    command -v xvfb-run >/dev/null || fail "GUI=1 needs xvfb-run (apt-get install xvfb xauth)"
    [[ -d "$BUNDLE/_internal/PySide6" ]] || fail "GUI=1 but the bundle has no PySide6 (build it with GUI=1)"
    GUI_DATA="$WORK/gui-data"
    gui_env=("${run_env[@]}" "ATELIER_DATA_DIR=$GUI_DATA")  # env(1): the later assignment wins
    "${gui_env[@]}" xvfb-run -a -s "-screen 0 1280x900x24" "$BUNDLE/Atelier" > "$WORK/gui.log" 2>&1 &
    XVFB_PID=$!
    window_started=$(date +%s%N)
    for _ in $(seq 1200); do
        [[ -z "$GUI_APP_PID" && -s "$GUI_DATA/runtime.json" ]] && GUI_APP_PID="$(json_get "$GUI_DATA/runtime.json" pid)"
        grep -q "window: first page loaded" "$GUI_DATA/logs/atelier.log" 2>/dev/null && break
        kill -0 "$XVFB_PID" 2>/dev/null || fail "the app with its window exited: $(cat "$WORK/gui.log")"
        sleep 0.05
    done
    grep -q "window: first page loaded" "$GUI_DATA/logs/atelier.log" 2>/dev/null \
        || fail "the window did not load the UI: $(tail -n 30 "$GUI_DATA/logs/atelier.log" "$WORK/gui.log")"
    window_ms=$(( ($(date +%s%N) - window_started) / 1000000 ))
    log "the window loaded the UI after ${window_ms} ms"
    GUI_APP_PID="$(json_get "$GUI_DATA/runtime.json" pid)"
    kill -TERM "$GUI_APP_PID"
    GUI_APP_PID=""
    set +e
    wait "$XVFB_PID"
    gui_status=$?
    set -e
    XVFB_PID=""
    [[ "$gui_status" == "0" ]] || fail "the app with its window exited with status $gui_status after SIGTERM"
    [[ ! -e "$GUI_DATA/runtime.json" ]] || fail "runtime.json was left behind by the window run"
    log "window: clean exit"
fi

bundle_bytes=$(du -sb "$BUNDLE" | cut -f1)
summary() {
    echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($bundle_bytes bytes); build: ${build_s} s;" \
         "frozen start-up to healthy: ${startup_ms} ms${deb_size:+; .deb: $deb_size}; smoke total: $(( $(date +%s) - smoke_started )) s"
}
deb_size=""

if [[ "${SKIP_DEB:-0}" == "1" ]]; then
    log "SKIP_DEB=1: not building the .deb"
    summary
    exit 0
fi
log "building the .deb"
DEB="$("$ROOT/scripts/build_deb.sh" "$BUNDLE" "$DIST" | tail -n 1)"
dpkg-deb --info "$DEB" >/dev/null
dpkg-deb --contents "$DEB" > "$WORK/deb-contents.txt"
grep -q '\./usr/bin/atelier$' "$WORK/deb-contents.txt" || fail ".deb lacks /usr/bin/atelier"
deb_size="$(du -h "$DEB" | cut -f1)"
if [[ "$(id -u)" != "0" ]]; then
    log "not root: skipping dpkg -i / dpkg -r"
    summary
    exit 0
fi
# "deinstall ok config-files" (removed, not purged) does not count as installed.
deb_state="$(dpkg-query -W -f='${Status}' atelier 2>/dev/null || true)"
if [[ "$deb_state" == *" installed" ]]; then
    fail "a package named atelier is already installed ($deb_state); refusing to touch it"
fi
log "dpkg -i"
dpkg -i "$DEB" >/dev/null || { apt-get install -f -y >/dev/null 2>&1 && dpkg -i "$DEB" >/dev/null; } || fail "dpkg -i"
[[ -x /opt/atelier/Atelier && -f /usr/share/applications/atelier.desktop ]] || fail "dpkg -i did not install the files"
version_line="$(/usr/bin/atelier --version 2>&1)" || true
[[ "$version_line" == Atelier\ * ]] || { dpkg --purge atelier >/dev/null; fail "/usr/bin/atelier --version: $version_line"; }
log "installed: $version_line"
log "dpkg -r"
dpkg -r atelier >/dev/null
[[ ! -e /usr/bin/atelier && ! -e /opt/atelier ]] || fail "dpkg -r left files behind"
dpkg --purge atelier >/dev/null 2>&1  # dpkg warns that /opt is not empty: expected
summary
log "bundle smoke test passed"
