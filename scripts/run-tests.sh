#!/usr/bin/env bash
# Runs Criterion test binaries one after another (each runs its own tests in
# parallel), bounded in time, and closes with one line over all of them:
# "N passed, N failed". Exits non-zero when any test failed or crashed, or a
# binary did not report (it died or timed out).
set -u
TIMEOUT=${MB_TEST_TIMEOUT:-600}
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
echo
[ ${#bad_bins[@]} -gt 0 ] && echo "failing binaries: ${bad_bins[*]}"
echo "$passed passed, $failed failed"
[ ${#bad_bins[@]} -eq 0 ]
