#!/usr/bin/env bash
# Storage benchmarks next to fio on the same disk, in one run (BENCHMARKS.md).
# For each block size, fio's 1 GiB sequential write (buffered, and fsync after
# every write) runs right before the Go benchmark that appends the same 1 GiB,
# with `sync` before each so that neither pays for the other's writeback.
# Needs fio and python3 (apt-get install fio).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/mlog-bench.XXXXXX")
trap 'rm -rf "$dir"' EXIT
go test -c -o "$dir/storage.test" ./storage/

fio_run() { # label bs extra...
	local label=$1 bs=$2; shift 2
	sync
	fio --name=seqwrite --directory="$dir" --rw=write --bs="$bs" --size=1g \
		--ioengine=psync --direct=0 --unlink=1 "$@" --output-format=json |
		python3 -c 'import json,sys; j=json.load(sys.stdin); print("%-44s %8.1f MB/s" % (sys.argv[1], j["jobs"][0]["write"]["bw_bytes"]/1e6))' "$label"
}
bench() { # regexp benchtime
	sync
	(cd storage && "$dir/storage.test" -test.run '^$' -test.bench "$1" -test.benchtime "$2" -test.timeout 30m) | grep '^Benchmark'
}

for round in 1 2 3; do
	echo "# round $round"
	fio_run "fio write 16k buffered" 16k
	bench 'Append/batch=16KiB/raw-pwrite' 65536x
	bench 'Append/batch=16KiB/fsync=none' 65536x
	fio_run "fio write 1m buffered" 1m
	bench 'Append/batch=1MiB/raw-pwrite' 1024x
	bench 'Append/batch=1MiB/fsync=none' 1024x
done
echo "# with fsync"
fio_run "fio write 16k fsync every write" 16k --fsync=1
bench 'Append/batch=16KiB/fsync=group' 65536x
fio_run "fio write 1m fsync every write" 1m --fsync=1
bench 'Append/batch=1MiB/fsync=group' 1024x
echo "# reads, lookups, reopen"
bench 'Read' 5x
bench 'Lookup' 200000x
bench 'Reopen' 5x
