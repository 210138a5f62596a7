package storage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"testing"

	"github.com/mlog/mlog/storage/batch/batchtest"
)

func benchConfig() Config {
	cfg := DefaultConfig()
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.MaxBatchBytes = 2 << 20 // a 1 MiB batch of 1 KiB records is a little over 1 MiB
	return cfg
}

// kib1Batch returns a batch of n 1 KiB records.
func kib1Batch(n int) []byte {
	return batchtest.Random(rand.New(rand.NewPCG(1, 1)), n, 1024, 1_700_000_000_000)
}

// BenchmarkAppend measures append throughput of 16 KiB and 1 MiB batches of
// 1 KiB records: without fsync (page cache, like Kafka's default), and with
// every appender waiting for the group-commit fsync (16 concurrent
// appenders per core, each waiting for durability before its next append).
func BenchmarkAppend(b *testing.B) {
	for _, size := range []struct {
		name    string
		records int
	}{{"16KiB", 16}, {"1MiB", 1024}} {
		// The floor: the same bytes written with pwrite to one file, no log.
		b.Run(fmt.Sprintf("batch=%s/raw-pwrite", size.name), func(b *testing.B) {
			f, err := os.Create(b.TempDir() + "/raw")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Close() })
			bt := kib1Batch(size.records)
			b.SetBytes(int64(len(bt)))
			b.ResetTimer()
			var pos int64
			for range b.N {
				if _, err := f.WriteAt(bt, pos); err != nil {
					b.Fatal(err)
				}
				pos += int64(len(bt))
			}
		})
		b.Run(fmt.Sprintf("batch=%s/fsync=none", size.name), func(b *testing.B) {
			l := openBench(b)
			bt := kib1Batch(size.records)
			b.SetBytes(int64(len(bt)))
			b.ResetTimer()
			for range b.N {
				if _, err := l.Append(bt, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("batch=%s/fsync=group", size.name), func(b *testing.B) {
			l := openBench(b)
			b.SetBytes(int64(len(kib1Batch(size.records))))
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				bt := kib1Batch(size.records)
				ctx := context.Background()
				for pb.Next() {
					res, err := l.Append(bt, 0)
					if err == nil {
						err = l.WaitDurable(ctx, res)
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// openBench opens a log whose Close, which fsyncs everything, runs after the
// timer stopped (a deferred call would run inside it).
func openBench(b *testing.B) *Log {
	l, err := Open(b.TempDir(), benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

// fillLog appends 16 KiB batches until the log holds size bytes.
func fillLog(b *testing.B, dir string, size int64) *Log {
	b.Helper()
	l, err := Open(dir, benchConfig())
	if err != nil {
		b.Fatal(err)
	}
	bt := kib1Batch(16)
	for l.Size() < size {
		if _, err := l.Append(bt, 0); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// BenchmarkRead measures sequential reads of a 1 GiB log from the page cache
// in 1 MiB fetches, copying the regions out as a fetch without sendfile would.
func BenchmarkRead(b *testing.B) {
	l := fillLog(b, b.TempDir(), 1<<30)
	defer l.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(l.Size())
	b.ResetTimer()
	for range b.N {
		for off := int64(0); off < l.LogEndOffset(); {
			reg, err := l.Read(off, 1<<20, -1)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.CopyBuffer(io.Discard, reg.Reader(), buf); err != nil {
				b.Fatal(err)
			}
			// The next fetch starts after the region's last batch.
			off = lastOffsetIn(b, &reg) + 1
			reg.Release()
		}
	}
}

func lastOffsetIn(b *testing.B, reg *Region) int64 {
	hdr := make([]byte, 61)
	// Regions end at a batch boundary: walk headers to the last one.
	var pos, last int64
	for pos < reg.Size {
		if _, err := reg.seg.log.ReadAt(hdr, reg.Position+pos); err != nil {
			b.Fatal(err)
		}
		h, err := parseHdr(hdr)
		if err != nil {
			b.Fatal(err)
		}
		pos += h.Size()
		last = h.LastOffset()
	}
	return last
}

// BenchmarkLookup measures finding a random offset in a 1 GiB log: the
// index binary search plus the header walk to the batch (Read with a 1-byte
// limit returns just that batch's region).
func BenchmarkLookup(b *testing.B) {
	l := fillLog(b, b.TempDir(), 1<<30)
	defer l.Close()
	end := l.LogEndOffset()
	r := rand.New(rand.NewPCG(2, 2))
	b.Run("read-region", func(b *testing.B) {
		for range b.N {
			reg, err := l.Read(r.Int64N(end), 1, -1)
			if err != nil || reg.Empty() {
				b.Fatal(err)
			}
			reg.Release()
		}
	})
	b.Run("index-only", func(b *testing.B) {
		ix, err := l.active().indexes()
		if err != nil {
			b.Fatal(err)
		}
		for range b.N {
			ix.off.lookup(uint32(r.Int64N(end)))
		}
	})
}

// BenchmarkReopen measures Open of a 2 GiB log (two 1 GiB segments): after a
// clean Close (no scan), and after a crash with no checkpoint, when every
// batch of both segments is read and CRC-checked (reported as MB/s).
func BenchmarkReopen(b *testing.B) {
	dir := b.TempDir()
	l := fillLog(b, dir, 2<<30)
	size := l.Size()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.Run("clean", func(b *testing.B) {
		for range b.N {
			l, err := Open(dir, benchConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	})
	crashScan := func(b *testing.B, cold bool) {
		b.SetBytes(size)
		for range b.N {
			b.StopTimer()
			if err := os.Remove(dir + "/" + checkpointName); err != nil {
				b.Fatal(err)
			}
			if cold {
				dropPageCache(b)
			}
			b.StartTimer()
			l, err := Open(dir, benchConfig())
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if l.Size() != size {
				b.Fatalf("recovered %d bytes of %d", l.Size(), size)
			}
			l.crash()
			b.StartTimer()
		}
	}
	b.Run("crash-full-scan", func(b *testing.B) { crashScan(b, false) })
	// From the disk rather than the page cache (needs root).
	b.Run("crash-full-scan-cold", func(b *testing.B) { crashScan(b, true) })
}

func dropPageCache(b *testing.B) {
	b.Helper()
	if err := exec.Command("sync").Run(); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Skipf("cannot drop the page cache for a cold read (needs root): %v", err)
	}
}
