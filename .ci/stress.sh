#!/usr/bin/env bash
# make stress: the whole suite N times (default 5), race detector on, while
# a parallel build of the project loads every core. Prints one line per run
# and the total; exits non-zero when any run failed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
logdir=$(mktemp -d /tmp/pop3svc-stress.XXXXXX)
loadcache=$(mktemp -d /tmp/pop3svc-stress-cache.XXXXXX)

# The load: rebuild everything from scratch, over and over, in its own cache.
(
	while :; do
		GOCACHE="$loadcache" go build -a -o /dev/null ./... >/dev/null 2>&1
		GOCACHE="$loadcache" go clean -cache >/dev/null 2>&1
	done
) &
load=$!
trap 'kill $load 2>/dev/null; pkill -P $load 2>/dev/null; wait $load 2>/dev/null; rm -rf "$loadcache"' EXIT

failed=0
for i in $(seq 1 "$runs"); do
	start=$(date +%s)
	if go test -race -count=1 -timeout "${TEST_TIMEOUT:-20m}" -json ./... 2>&1 |
		GOTEST_JSON="$logdir/run$i.json" python3 .ci/testreport.py >"$logdir/run$i.txt" 2>&1; then
		result=pass
	else
		result=FAIL
		failed=$((failed + 1))
	fi
	echo "stress run $i/$runs: $result in $(($(date +%s) - start))s ($(tail -n 1 "$logdir/run$i.txt" | grep -o '[0-9]* passed, [0-9]* failed.*' || echo 'no count'))"
	if [ "$result" = FAIL ]; then
		grep -E '^(--- FAIL|FAIL|panic:)' "$logdir/run$i.txt" | head -20 | sed 's/^/    /'
	fi
done
echo "stress: $((runs - failed)) of $runs runs passed under load; logs in $logdir"
[ "$failed" -eq 0 ]
