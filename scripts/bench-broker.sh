#!/usr/bin/env bash
# Single-node broker benchmarks (BENCHMARKS.md): starts `mlog server` as
# `make run` does (default flags, so --fsync=always) on a fresh data dir,
# then `mlog perf produce` with acks=1 and acks=all for 100 B and 1 KiB
# records, 1M each, consuming each topic back, and fio's buffered 1 MiB
# sequential write on the same disk for reference. Needs fio, python3.
# Values are mlog perf's random, incompressible bytes, sent uncompressed;
# PERF_FLAGS adds perf flags (e.g. "--compression snappy").
set -euo pipefail
cd "$(dirname "$0")/.."
make -s build-mlog
dir=$(mktemp -d "${TMPDIR:-/tmp}/mlog-bench-broker.XXXXXX")
port=${PORT:-9094}
./bin/mlog server --data-dir "$dir/data" --rpc-port "$port" ${SERVER_FLAGS:-} >"$dir/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
	grep -q "broker started" "$dir/server.log" && break
	sleep 0.1
done
brokers=127.0.0.1:$port
N=${N:-1000000}

if command -v fio >/dev/null; then
	sync
	fio --name=seqwrite --directory="$dir" --rw=write --bs=1m --size=1g --ioengine=psync --direct=0 \
		--unlink=1 --output-format=json |
		python3 -c 'import json,sys; j=json.load(sys.stdin); print("fio write 1m buffered: %.1f MB/s" % (j["jobs"][0]["write"]["bw_bytes"]/1e6))'
fi
for size in 100 1024; do
	for acks in 1 all; do
		topic="perf-$size-$acks"
		sync
		echo "# produce $N x $size B, acks=$acks (${SERVER_FLAGS:---fsync=always})"
		./bin/mlog perf produce --brokers "$brokers" --topic "$topic" --num-records "$N" --record-size "$size" --acks "$acks" ${PERF_FLAGS:-} | grep -E "records sent,|^bytes"
		echo "# consume $topic"
		./bin/mlog perf consume --brokers "$brokers" --topic "$topic" --num-records "$N" | sed -n 2p
	done
done
