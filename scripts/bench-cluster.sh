#!/usr/bin/env bash
# Three-node local cluster benchmarks (BENCHMARKS.md): starts the seed's
# local cluster (scripts/start-local-cluster.sh, data in a temp dir), then
#  1. mlog perf produce RF3 acks=all, 1 KiB records (N, default 1M), and
#     consumes them back from another node;
#  2. failover: TRIALS times, SIGKILL the partition leader and time until a
#     fresh producer's first acks=all record is acknowledged by the new
#     leader; the cluster is restarted between trials.
# It stops the cluster (only its own processes) when done.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build-server build-topic build-mlog
export MLOG_LOCAL_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mlog-bench-cluster.XXXXXX")
trap './scripts/stop-local-cluster.sh >/dev/null 2>&1; rm -rf "$MLOG_LOCAL_DIR"' EXIT
N=${N:-1000000}
TRIALS=${TRIALS:-3}

in_sync() { # wait until both followers of topic perf are in the ISR
	for _ in $(seq 1 100); do
		./bin/topic list --addrs 127.0.0.1:9094,127.0.0.1:9097,127.0.0.1:9100 2>/dev/null | grep "topic=perf" | grep -q "isr=true.*isr=true" && return 0
		sleep 0.2
	done
	echo "cluster not in sync" >&2
	return 1
}

./scripts/start-local-cluster.sh >/dev/null
for _ in $(seq 1 50); do
	./bin/topic create --addrs 127.0.0.1:9094 --topic perf --replicas 3 --timeout 5s >/dev/null 2>&1 && break
	sleep 0.2
done
in_sync
echo "# produce $N x 1 KiB, RF3, acks=all (fsync=always)"
./bin/mlog perf produce --brokers 127.0.0.1:9094,127.0.0.1:9097,127.0.0.1:9100 --topic perf --num-records "$N" --record-size 1024 --acks all ${PERF_FLAGS:-} | grep -E "records sent,|^bytes"
echo "# consume them back from node-2"
./bin/mlog perf consume --brokers 127.0.0.1:9097 --topic perf --num-records "$N" | sed -n 2p
./bin/topic list

for trial in $(seq 1 "$TRIALS"); do
	in_sync
	leader=$(./bin/topic list --addrs 127.0.0.1:9097,127.0.0.1:9100,127.0.0.1:9094 | grep "topic=perf" | sed 's/.*leader=node-\([0-9]\).*/\1/')
	others=$(for n in 1 2 3; do if [ "$n" != "$leader" ]; then printf '127.0.0.1:%d,' $((9091 + 3 * n)); fi; done)
	kill -9 "$(cat "$MLOG_LOCAL_DIR/node$leader.pid")"
	t0=$(date +%s%N)
	./bin/mlog perf produce --brokers "${others%,}" --topic perf --num-records 1 --record-size 10 --acks all >/dev/null
	t1=$(date +%s%N)
	echo "failover trial $trial: leader node-$leader SIGKILLed -> first acked produce on the new leader: $(( (t1 - t0) / 1000000 )) ms"
	./scripts/stop-local-cluster.sh >/dev/null 2>&1
	./scripts/start-local-cluster.sh >/dev/null
done
