#!/usr/bin/env bash
# How cost grows with the partition count (issue 11, BENCHMARKS.md). For
# every count in PARTITIONS and producer count in PRODUCERS: fresh data
# dirs, NODES servers (1, or 3 with RF3), a topic with that many partitions,
# `mlog perf produce` of N random 1 KiB values (acks=all, no compression),
# and one line: records/s, ack p99, the servers' CPU-seconds per GB and peak
# RSS, the most records waiting for the ISR (sum over leaders of LEO minus
# high watermark, sampled every second: replication lag), disk used, how
# long the topic took to create, the consume rate of everything back, and
# after a clean stop and restart how long until every record is readable
# again. Every server is stopped after its row; a
# watchdog stops the run if the disk falls below MIN_FREE_GB. SERVER_FLAGS
# adds server flags (e.g. "--fsync never"); RESTART_READ=1 measures instead
# of the full read after the restart how long until every partition serves a
# fetch of its first records (bench/firstread: raw requests every 10 ms, so
# that no consumer's retry backoff is measured).
#
#   ./scripts/bench-scale.sh                                   # 1 node, 1..10,000 partitions, 1 and 16 producers
#   NODES=3 PARTITIONS="1 100 1000" ./scripts/bench-scale.sh    # RF3 on three local nodes
#   PARTITIONS=1 PRODUCERS=1 N=10485760 RESTART_READ=1 ./scripts/bench-scale.sh   # a 10 GiB log: ready time
set -euo pipefail
cd "$(dirname "$0")/.."
[ -z "${MLOG_BIN:-}" ] && make -s build-mlog
[ "${RESTART_READ:-}" = 1 ] && (cd bench && go build -o ../bin/firstread ./firstread)
bin=${MLOG_BIN:-./bin/mlog}
NODES=${NODES:-1}
PARTITIONS=${PARTITIONS:-"1 10 100 1000 10000"}
PRODUCERS=${PRODUCERS:-"1 16"}
N=${N:-200000}
SIZE=${SIZE:-1024}
MIN_FREE_GB=${MIN_FREE_GB:-25}
root=$(mktemp -d "${TMPDIR:-/tmp}/mlog-bench-scale.XXXXXX")
pids=()
stop_all() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
watchdog=
cleanup() {
	[ -n "$watchdog" ] && kill "$watchdog" 2>/dev/null
	stop_all
	rm -rf "$root"
}
trap cleanup EXIT
# The disk is shared with everything else on the machine: stop before it fills.
(
	while sleep 2; do
		free=$(df --output=avail -k "$root" | tail -1)
		if [ "$free" -lt $((MIN_FREE_GB * 1024 * 1024)) ]; then
			echo "bench-scale: under ${MIN_FREE_GB} GB free, stopping" >&2
			pkill -f "$root" || true
			exit 1
		fi
	done
) &
watchdog=$!

cpu_ticks() { # utime+stime of the given pids, in clock ticks
	local t=0
	for p in "$@"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
	echo "$t"
}
peak_rss_mib() { # largest VmHWM of the given pids
	local m=0 v
	for p in "$@"; do
		v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
		[ "$v" -gt "$m" ] && m=$v
	done
	echo $((m / 1024))
}
uncommitted() { # sum of LEO - HW over the partitions each server leads
	local s=0 v
	for i in $(seq 1 "$NODES"); do
		v=$(curl -s "http://127.0.0.1:$((19644 + i))/metrics" | awk '/^mlog_partition_uncommitted_records/ {s+=$2} END {printf "%d", s}')
		s=$((s + v))
	done
	echo "$s"
}

# start_nodes starts NODES servers with their data in $1, sets brokers,
# and waits until each answers /readyz (unless $2 is "nowait").
start_nodes() {
	brokers=
	for i in $(seq 1 "$NODES"); do
		args=(server --node-id "node-$i" --data-dir "$1/data-$i" --bind-addr "127.0.0.1:$((19091 + 10 * i))"
			--raft-addr "127.0.0.1:$((19092 + 10 * i))" --rpc-port $((19093 + 10 * i)) --http-addr "127.0.0.1:$((19644 + i))")
		[ "$i" = 1 ] && args+=(--bootstrap)
		# shellcheck disable=SC2206
		args+=(${SERVER_FLAGS:-})
		for j in $(seq 1 "$NODES"); do
			[ "$j" != "$i" ] && args+=(--peer "node-$j=127.0.0.1:$((19091 + 10 * j))")
		done
		"$bin" "${args[@]}" >>"$1/server-$i.log" 2>&1 &
		pids+=($!)
		brokers+="${brokers:+,}127.0.0.1:$((19093 + 10 * i))"
	done
	[ "${2:-}" = nowait ] && return
	for i in $(seq 1 "$NODES"); do
		for _ in $(seq 1 600); do
			curl -sf "http://127.0.0.1:$((19644 + i))/readyz" >/dev/null && break
			sleep 0.1
		done
	done
}

hz=$(getconf CLK_TCK)
rf=$NODES
# The last column compares a row with the first row of its producer count
# in this run (this machine's speed swings between runs, not within one).
printf "| partitions | producers | records/s | MB/s | ack p99 ms | CPU-s per GB | peak RSS MiB | max records waiting for ISR | disk GB | create s | consume MB/s | restart to all readable s | records/s, CPU per GB vs the first row of its producer count |\n"
printf "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
for P in $PARTITIONS; do
	for prod in $PRODUCERS; do
		run="$root/p$P-$prod"
		mkdir -p "$run"
		start_nodes "$run"
		t0=$(date +%s.%N)
		"$bin" topic create --addrs "$brokers" --topic scale --partitions "$P" --replicas "$rf" --timeout 5m >/dev/null
		# Every partition led: what perf waits for too; timed here on its own.
		"$bin" perf produce --brokers "$brokers" --topic scale --num-records 1 --record-size 1 >/dev/null 2>&1
		t1=$(date +%s.%N)
		c0=$(cpu_ticks "${pids[@]}")
		maxwait=0
		"$bin" perf produce --brokers "$brokers" --topic scale --num-records "$N" --record-size "$SIZE" \
			--producers "$prod" --acks all --timeout 10m >"$run/perf.out" 2>&1 &
		perf=$!
		while kill -0 "$perf" 2>/dev/null; do
			w=$(uncommitted)
			[ "$w" -gt "$maxwait" ] && maxwait=$w
			sleep 1
		done
		wait "$perf" || { cat "$run/perf.out" >&2; exit 1; }
		c1=$(cpu_ticks "${pids[@]}")
		rss=$(peak_rss_mib "${pids[@]}")
		disk=$(du -sk "$run" 2>/dev/null | awk '{printf "%.1f", $1/1024/1024}')
		total=$((N + 1))
		"$bin" perf consume --brokers "$brokers" --topic scale --num-records "$total" --timeout 10m >"$run/consume.out" 2>&1
		stop_all # SIGTERM: a clean stop
		t2=$(date +%s.%N)
		if [ "${RESTART_READ:-}" = 1 ]; then
			start_nodes "$run" nowait
			t3=$(python3 -c "print($t2 + $(./bin/firstread -brokers "$brokers" -topic scale -since "$t2"))")
		else
			start_nodes "$run"
			"$bin" perf consume --brokers "$brokers" --topic scale --num-records "$total" --timeout 10m >/dev/null 2>&1
			t3=$(date +%s.%N)
		fi
		stop_all
		python3 - "$run/perf.out" "$c0" "$c1" "$hz" "$N" "$SIZE" "$P" "$prod" "$rss" "$maxwait" "$disk" "$t0" "$t1" "$run/consume.out" "$t2" "$t3" "$root/first-$prod" <<'EOF'
import os, re, sys
out, c0, c1, hz, n, size, p, prod, rss, maxwait, disk, t0, t1, cons, t2, t3, first = sys.argv[1:]
cline = [l for l in open(cons) if re.match(r"\d{4}-", l)][-1].split(", ")
consume_mbs = float(cline[3])
final = [l for l in open(out) if "records sent," in l][-1]
rps = float(re.search(r"([\d.]+) records/sec", final).group(1))
mbs = float(re.search(r"\(([\d.]+) MB/sec\)", final).group(1))
p99 = re.search(r"([\d.]+) ms 99th", final).group(1)
gb = int(n) * int(size) / 1e9
cpu = (int(c1) - int(c0)) / int(hz)
if not os.path.exists(first):
    open(first, "w").write(f"{rps} {cpu / gb}")
rps0, cpu0 = map(float, open(first).read().split())
print(f"| {int(p):,} | {prod} | {rps:,.0f} | {mbs:,.1f} | {p99} | {cpu / gb:.1f} | {rss} | {int(maxwait):,} | {disk} | {float(t1) - float(t0):.1f} | {consume_mbs:,.1f} | {float(t3) - float(t2):.2f} | {rps / rps0:.2f} / {cpu / gb / cpu0:.2f} |")
EOF
		rm -rf "$run"
	done
done
