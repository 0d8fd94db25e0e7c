#!/usr/bin/env bash
# CI: build the frozen Linux bundle from a clean venv and smoke-test it for real, then the .deb.
#
#  1. scripts/build_bundle.sh (headless) -> dist/Atelier
#  2. start the fake OpenRouter (tests/fakes/openrouter.py) on loopback
#  3. start the frozen app `--no-window` with a temp data dir against the fake; wait for runtime.json;
#     GET /api/v1/health; one text generation through POST /api/v1/generations; `Atelier doctor --json`
#     (must exit 0 while the app runs and never print the key); SIGTERM; check a clean exit (status 0,
#     runtime.json removed, no .wal left)
#  4. scripts/build_deb.sh; dpkg -i; /usr/bin/atelier --version; dpkg -r (needs root, skipped otherwise)
#  5. print bundle size, .deb size and frozen start-up time (for docs/performance.md)
#
# Environment: PYTHON (for the fake and JSON parsing; default: python3), SKIP_BUILD=1 to reuse dist/Atelier,
# SKIP_DEB=1 to stop after the bundle checks. Exit status non-zero on the first failure.
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

log() { printf '==> %s\n' "$*"; }
fail() { printf 'SMOKE FAILED: %s\n' "$*" >&2; [[ -f "$WORK/app.log" ]] && sed 's/^/  app| /' "$WORK/app.log" >&2; exit 1; }
cleanup() {
    [[ -n "$APP_PID" ]] && kill -KILL "$APP_PID" 2>/dev/null || true
    [[ -n "$FAKE_PID" ]] && kill -TERM "$FAKE_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
json_get() { "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d[sys.argv[2]])' "$@"; }

if [[ "${SKIP_BUILD:-0}" != "1" ]]; then
    log "building the bundle"
    ATELIER_DIST_DIR="$DIST" "$ROOT/scripts/build_bundle.sh"
fi
[[ -x "$BUNDLE/Atelier" ]] || fail "$BUNDLE/Atelier not found"
"$BUNDLE/Atelier" --version | grep -q "^Atelier " || fail "--version"

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

bundle_bytes=$(du -sb "$BUNDLE" | cut -f1)
echo "bundle size: $(du -sh "$BUNDLE" | cut -f1) ($bundle_bytes bytes); frozen start-up to healthy: ${startup_ms} ms"

if [[ "${SKIP_DEB:-0}" == "1" ]]; then
    log "SKIP_DEB=1: not building the .deb"
    exit 0
fi
log "building the .deb"
DEB="$("$ROOT/scripts/build_deb.sh" "$BUNDLE" "$DIST" | tail -n 1)"
dpkg-deb --info "$DEB" >/dev/null
dpkg-deb --contents "$DEB" > "$WORK/deb-contents.txt"
grep -q '\./usr/bin/atelier$' "$WORK/deb-contents.txt" || fail ".deb lacks /usr/bin/atelier"
echo "deb size: $(du -h "$DEB" | cut -f1)"
if [[ "$(id -u)" != "0" ]]; then
    log "not root: skipping dpkg -i / dpkg -r"
    exit 0
fi
if dpkg -s atelier >/dev/null 2>&1; then fail "a package named atelier is already installed; refusing to touch it"; fi
log "dpkg -i"
dpkg -i "$DEB" || { apt-get install -f -y >/dev/null 2>&1 && dpkg -i "$DEB"; } || fail "dpkg -i"
/usr/bin/atelier --version | grep -q "^Atelier " || { dpkg -r atelier; fail "/usr/bin/atelier --version"; }
log "dpkg -r"
dpkg -r atelier >/dev/null
[[ ! -e /usr/bin/atelier && ! -e /opt/atelier ]] || fail "dpkg -r left files behind"
log "bundle smoke test passed"
