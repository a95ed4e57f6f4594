#!/usr/bin/env bash
# Runs Criterion test binaries one after another (each runs its own tests in
# parallel), bounded in time, then optionally one TAP-reporting command
# (--tap "CMD": node's test runner for tests/interop), and closes with one
# line over all of them: "N passed, N failed". Exits non-zero when any test
# failed or crashed, or a binary or the TAP command did not report (it died
# or timed out).
set -u
TIMEOUT=${MB_TEST_TIMEOUT:-600}
tap_cmd=""
if [ "${1:-}" = "--tap" ]; then tap_cmd=$2; shift 2; fi
passed=0; failed=0; bad_bins=()
for bin in "$@"; do
    out=$(mktemp)
    echo "== $bin"
    timeout --kill-after=10 "$TIMEOUT" "$bin" --short-filename 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    syn=$(grep -a 'Synthesis: Tested:' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$syn" ]; then
        echo "!! $bin exited $rc without a Criterion synthesis"
        bad_bins+=("$bin"); failed=$((failed + 1)); continue
    fi
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$syn")
    f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$syn")
    c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$syn")
    passed=$((passed + p)); failed=$((failed + f + c))
    if [ "$rc" != 0 ] || [ $((f + c)) != 0 ]; then bad_bins+=("$bin"); fi
done
if [ -n "$tap_cmd" ]; then
    out=$(mktemp)
    echo "== $tap_cmd"
    bash -c "$tap_cmd" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$out" | tail -n 1)
    f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$out" | tail -n 1)
    rm -f "$out"
    if [ -z "$p" ] || [ -z "$f" ]; then
        echo "!! the TAP command exited $rc without a summary"
        bad_bins+=("tap"); failed=$((failed + 1))
    else
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$rc" != 0 ] || [ "$f" != 0 ]; then bad_bins+=("tap"); fi
    fi
fi
echo
[ ${#bad_bins[@]} -gt 0 ] && echo "failing: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ ${#bad_bins[@]} -eq 0 ]
