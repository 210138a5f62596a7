#!/usr/bin/env bash
# Start the seed's three-node local cluster (no Docker):
#   node-1  Serf 127.0.0.1:9092  Raft 127.0.0.1:9093  Kafka 127.0.0.1:9094  HTTP 127.0.0.1:9644  data /tmp/mlog-local/node1
#   node-2  Serf 127.0.0.1:9095  Raft 127.0.0.1:9096  Kafka 127.0.0.1:9097  HTTP 127.0.0.1:9645  data /tmp/mlog-local/node2
#   node-3  Serf 127.0.0.1:9098  Raft 127.0.0.1:9099  Kafka 127.0.0.1:9100  HTTP 127.0.0.1:9646  data /tmp/mlog-local/node3
# (HTTP: /metrics, /healthz, /readyz)
# node-1 bootstraps and starts first; the others start once it answers.
# Logs and PID files go to $MLOG_LOCAL_DIR (default /tmp/mlog-local).
# Stop with ./scripts/stop-local-cluster.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
base=${MLOG_LOCAL_DIR:-/tmp/mlog-local}
server=${MLOG_SERVER_BIN:-./bin/server}
if [ ! -x "$server" ]; then
	make -s build-server
fi
mkdir -p "$base"

wait_port() { # host port seconds
	local deadline=$((SECONDS + $3))
	until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			echo "node on $1:$2 did not start; see $base/*.log" >&2
			return 1
		fi
		sleep 0.2
	done
}

start() { # n serf raft kafka [flags...]
	local n=$1 serf=$2 raft=$3 kafka=$4
	shift 4
	if [ -f "$base/node$n.pid" ] && kill -0 "$(cat "$base/node$n.pid")" 2>/dev/null; then
		echo "node-$n already running (pid $(cat "$base/node$n.pid"))"
		return
	fi
	"$server" --node-id "node-$n" --bind-addr "127.0.0.1:$serf" --raft-addr "127.0.0.1:$raft" \
		--rpc-port "$kafka" --http-addr "127.0.0.1:$((9643 + n))" --data-dir "$base/node$n" "$@" >>"$base/node$n.log" 2>&1 &
	echo $! >"$base/node$n.pid"
	echo "node-$n started (pid $!): Kafka 127.0.0.1:$kafka, log $base/node$n.log"
}

start 1 9092 9093 9094 --bootstrap --peer node-2=127.0.0.1:9095 --peer node-3=127.0.0.1:9098
wait_port 127.0.0.1 9094 30
start 2 9095 9096 9097 --peer node-1=127.0.0.1:9092 --peer node-3=127.0.0.1:9098
start 3 9098 9099 9100 --peer node-1=127.0.0.1:9092 --peer node-2=127.0.0.1:9095
wait_port 127.0.0.1 9097 30
wait_port 127.0.0.1 9100 30
echo "cluster up: try ./bin/topic list --addrs 127.0.0.1:9094"
