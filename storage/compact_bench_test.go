package storage

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"testing"

	"github.com/mlog/mlog/storage/batch"
)

// BenchmarkCompact compacts a 128 MiB log of 1 KiB values over 1,000 keys
// (16 records a batch, 8 MiB segments) and reports the rate at which the
// closed segments are read and rewritten.
func BenchmarkCompact(b *testing.B) {
	const keys, valueSize, perBatch = 1000, 1024, 16
	value := make([]byte, valueSize)
	var total int64
	for b.Loop() {
		b.StopTimer()
		cfg := DefaultConfig()
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.SegmentBytes = 8 << 20
		l, err := Open(b.TempDir(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		recs := make([]batch.Record, perBatch)
		for i := 0; l.Size() < 128<<20; i++ {
			for j := range recs {
				recs[j] = batch.Record{Key: fmt.Appendf(nil, "key-%d", (i*perBatch+j)%keys), Value: value}
			}
			if _, err := l.Append(batch.Build(recs), 1); err != nil {
				b.Fatal(err)
			}
		}
		if err := l.Roll(); err != nil {
			b.Fatal(err)
		}
		res := AppendResult{LastOffset: l.LogEndOffset() - 1, gen: l.gen.Load()}
		if err := l.WaitDurable(b.Context(), res); err != nil {
			b.Fatal(err)
		}
		for {
			l.mu.Lock()
			done := len(l.unflushed) == 0
			l.mu.Unlock()
			if done {
				break
			}
			l.RequestFlush()
			<-l.DurableNotify()
		}
		size := l.Size()
		b.StartTimer()
		st, err := l.Compact(math.MaxInt64, -1, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.Segments == 0 || l.Size() >= size/2 {
			b.Fatalf("compaction did little: %+v", st)
		}
		total += size
		l.Close()
		b.StartTimer()
	}
	b.SetBytes(total / int64(b.N))
}
