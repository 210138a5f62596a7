#!/usr/bin/env bash
# Stop the local cluster started by start-local-cluster.sh: SIGTERM to the
# processes it started (from its PID files, checked to still be mlog nodes),
# up to 10 s for a clean shutdown, then SIGKILL. Nothing else is touched.
set -uo pipefail
base=${MLOG_LOCAL_DIR:-/tmp/mlog-local}
pids=()
for n in 1 2 3; do
	f="$base/node$n.pid"
	[ -f "$f" ] || continue
	pid=$(cat "$f")
	# Only our own: the process must still be the node we started.
	if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--node-id node-$n "; then
		kill -TERM "$pid" && pids+=("$pid") && echo "node-$n (pid $pid): SIGTERM"
	fi
	rm -f "$f"
done
deadline=$((SECONDS + 10))
for pid in "${pids[@]}"; do
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "pid $pid still running after 10 s: SIGKILL"
		kill -KILL "$pid"
	fi
done
echo "local cluster stopped"
