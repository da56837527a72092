#!/usr/bin/env bash
# The README's first minute, as a newcomer lives it: clone the repository into
# a new folder, run `make run` there, wait until it prints the curl command
# that reads the demo mailbox, run that command, and stop the service.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/pop3svc-newcomer.XXXXXX)
git clone -q "$repo" "$work/pop3svc"
cd "$work/pop3svc"

make run >"$work/run.log" 2>&1 &
runpid=$!
cleanup() {
	# make → pop3d: stop the service, then make.
	pkill -TERM -P "$runpid" 2>/dev/null || true
	kill -TERM "$runpid" 2>/dev/null || true
	wait "$runpid" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# The build may fetch the toolchain and modules: allow a few minutes.
deadline=$((SECONDS + 300))
cmd=""
while [ $SECONDS -lt $deadline ]; do
	cmd=$(grep -o "curl -s --user '[^']*' pop3://[0-9.:]*/1" "$work/run.log" | head -n 1 || true)
	[ -n "$cmd" ] && break
	if ! kill -0 "$runpid" 2>/dev/null; then
		echo "newcomer: make run exited before printing the curl command:"; cat "$work/run.log"; exit 1
	fi
	sleep 1 # polling the log for a line, with the deadline above
done
if [ -z "$cmd" ]; then
	echo "newcomer: no curl command printed within 300 s:"; cat "$work/run.log"; exit 1
fi
echo "newcomer: make run printed: $cmd"
out=""
for _ in $(seq 1 30); do
	if out=$(eval "$cmd" 2>&1) && [ -n "$out" ]; then break; fi
	sleep 1 # the listener may come up just after the line is printed
done
if ! grep -qi "welcome\|subject" <<<"$out"; then
	echo "newcomer: the printed command did not read the welcome message:"; echo "$out"; cat "$work/run.log"; exit 1
fi
echo "newcomer: the printed curl command read the demo message ($(wc -c <<<"$out") bytes)"
