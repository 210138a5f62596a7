package main

import (
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// diskRun measures what an fsync costs in the data directory: n rounds of
// appending 4 KiB to a file and fdatasync-ing it, as a log appends a small
// batch and makes it durable before acknowledging (its p50 and p99 bound
// every latency of a system that fsyncs before it acks), then n/8 rounds
// of 1 MiB (the write rate of a system that fsyncs every batch).
func diskRun(dir string, res *results, n int) error {
	f, err := os.OpenFile(filepath.Join(dir, "fsync-probe"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	lat := make([]time.Duration, 0, n)
	for i := range n {
		start := time.Now()
		if _, err := f.WriteAt(buf, int64(i)*int64(len(buf))); err != nil {
			return err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	res.disk50 = append(res.disk50, percentile(lat, 0.50))
	res.disk99 = append(res.disk99, percentile(lat, 0.99))
	logf("disk: 4 KiB write + fdatasync p50 %.2f ms, p99 %.2f ms (%d rounds)", percentile(lat, 0.5), percentile(lat, 0.99), n)

	// Throughput when every MiB is made durable, as a log fsyncing ~1 MB
	// batches does: the most this disk takes of replicas that fsync, all
	// of them together when the nodes share it.
	big := make([]byte, 1<<20)
	rounds := max(n/8, 16)
	start := time.Now()
	for i := range rounds {
		if _, err := f.WriteAt(big, int64(n)*4096+int64(i)*int64(len(big))); err != nil {
			return err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return err
		}
	}
	mbps := float64(rounds) * float64(len(big)) / 1e6 / time.Since(start).Seconds()
	res.diskMBps = append(res.diskMBps, mbps)
	logf("disk: 1 MiB write + fdatasync %.1f MB/s (%d rounds)", mbps, rounds)
	return nil
}
