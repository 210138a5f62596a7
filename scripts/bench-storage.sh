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

# Each step deletes its 1 GiB file; on a filesystem mounted with `discard`
# the discards slow whatever runs next, so every step starts after a sync and
# a short settle.
settle() { sync; sleep "${SETTLE:-5}"; }

fio_run() { # label bs extra...
	local label=$1 bs=$2; shift 2
	settle
	fio --name=seqwrite --directory="$dir" --rw=write --bs="$bs" --size=1g \
		--ioengine=psync --direct=0 --unlink=1 "$@" --output-format=json |
		python3 -c 'import json,sys; j=json.load(sys.stdin); print("%-44s %8.1f MB/s" % (sys.argv[1], j["jobs"][0]["write"]["bw_bytes"]/1e6))' "$label"
}
bench() { # regexp benchtime
	settle
	(cd storage && "$dir/storage.test" -test.run '^$' -test.bench "$1" -test.benchtime "$2" -test.timeout 30m) | grep '^Benchmark'
}

# A "16 KiB" batch of 16 x 1 KiB records is 16589 bytes, a "1 MiB" one of
# 1024 records 1059773 bytes: fio also writes blocks of exactly those sizes,
# since writes that straddle pages cost the kernel more than aligned ones.
for round in 1 2 3; do
	echo "# round $round"
	fio_run "fio write 16k buffered" 16k
	fio_run "fio write 16589 B buffered" 16589
	bench 'Append/batch=16KiB/raw-pwrite' 65536x
	bench 'Append/batch=16KiB/fsync=none' 65536x
	fio_run "fio write 1m buffered" 1m
	fio_run "fio write 1059773 B buffered" 1059773
	bench 'Append/batch=1MiB/raw-pwrite' 1024x
	bench 'Append/batch=1MiB/fsync=none' 1024x
done
echo "# with fsync"
fio_run "fio write 16589 B fsync every write" 16589 --fsync=1
bench 'Append/batch=16KiB/fsync=group' 65536x
fio_run "fio write 1059773 B fsync every write" 1059773 --fsync=1
bench 'Append/batch=1MiB/fsync=group' 1024x
echo "# reads, lookups, reopen"
bench 'Read' 5x
bench 'Lookup' 200000x
bench 'Reopen' 5x
