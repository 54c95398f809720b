#!/usr/bin/env bash
# The Open Responses compliance suite against `pipecat-responses-ws serve`, in one command.
#
#   bench/compliance.sh [SUITE_DIR] [-- extra arguments of the suite, e.g. --filter basic-response]
#
# SUITE_DIR is a checkout of https://github.com/openresponses/openresponses (default:
# $OPENRESPONSES_DIR, else shared/conformance/openresponses beside the repository or one level
# further up, where a git worktree of it would find it). It is
# copied to a temporary directory, never written to. The suite runs on bun with zod, installed
# from npm into ~/.cache/pipecat-responses-ws/compliance when bun is not on the PATH (once; later
# runs reuse them). The emulator listens on a free port with a fresh API key and stops at the
# end. Prints each test and "passed N, failed M of T"; exits non-zero when any test failed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
suite_dir="${OPENRESPONSES_DIR:-}"
if [ -z "$suite_dir" ]; then
  for candidate in "$repo/../shared/conformance/openresponses" "$repo/../../shared/conformance/openresponses"; do
    if [ -f "$candidate/bin/compliance-test.ts" ]; then suite_dir="$candidate"; break; fi
  done
fi
if [ $# -gt 0 ] && [ "$1" != "--" ]; then suite_dir="$1"; shift; fi
[ "${1:-}" = "--" ] && shift
if [ ! -f "$suite_dir/bin/compliance-test.ts" ]; then
  echo "compliance.sh: no Open Responses checkout at ${suite_dir:-../shared/conformance/openresponses} (pass its path, or set OPENRESPONSES_DIR)" >&2
  exit 2
fi
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

tools="${XDG_CACHE_HOME:-$HOME/.cache}/pipecat-responses-ws/compliance"
zod_version="$(sed -n 's/.*"zod": *"[^0-9]*\([0-9][0-9.]*\)".*/\1/p' "$suite_dir/package.json" | head -n 1)"
if [ ! -d "$tools/node_modules/zod" ] || { ! command -v bun >/dev/null 2>&1 && [ ! -x "$tools/node_modules/.bin/bun" ]; }; then
  mkdir -p "$tools"
  packages=("zod@${zod_version:-3}")
  command -v bun >/dev/null 2>&1 || packages+=(bun)
  echo "compliance.sh: installing ${packages[*]} from npm into $tools" >&2
  npm install --silent --no-audit --no-fund --prefix "$tools" "${packages[@]}" >&2
fi
bun="$(command -v bun || echo "$tools/node_modules/.bin/bun")"

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
tar -C "$suite_dir" --exclude=./node_modules --exclude=./.git -cf - . | tar -C "$work" -xf -
ln -s "$tools/node_modules" "$work/node_modules"

key="sk-compliance-$$-$RANDOM"
PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" "$python" -c \
  'import sys; from pipecat_responses_ws.cli import main; sys.exit(main())' \
  serve --port 0 --api-key "$key" >"$work/serve.log" 2>&1 &
server_pid=$!
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's|.*listening on ws://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' "$work/serve.log" | head -n 1)"
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 2; }
  sleep 0.1
done
[ -n "$port" ] || { echo "compliance.sh: serve did not start within 30 s" >&2; cat "$work/serve.log" >&2; exit 2; }

status=0
(cd "$work" && "$bun" run bin/compliance-test.ts --base-url "http://127.0.0.1:$port/v1" --api-key "$key" --json "$@") \
  >"$work/results.json" || status=$?
"$python" - "$work/results.json" <<'EOF' || status=$?
import json
import sys

try:
    results = json.load(open(sys.argv[1]))["results"]
except (OSError, ValueError, KeyError) as exc:
    sys.exit(f"compliance.sh: the suite gave no results ({exc})")
for result in sorted(results, key=lambda r: r["id"]):
    print(f"{result['status']:8} {result['id']}")
    for error in (result.get("errors") or [])[:3] if result["status"] == "failed" else []:
        print(f"         {error[:300]}")
counts = {s: sum(r["status"] == s for r in results) for s in ("passed", "failed", "skipped")}
print(f"passed {counts['passed']}, failed {counts['failed']} of {len(results)}" + (f" ({counts['skipped']} skipped)" if counts["skipped"] else ""))
sys.exit(1 if counts["failed"] else 0)
EOF
exit "$status"
