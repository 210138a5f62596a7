package storage

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/storage/batch"
)

// One appender, rolling and deleting segments, while readers read from
// random offsets: every region a reader gets is whole, valid batches with
// dense offsets starting at the batch it asked for. Run with -race.
func TestConcurrentReadersSeeOnlyWholeBatches(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentBytes = 16 << 10
	cfg.RetentionBytes = 64 << 10
	cfg.RetentionMs = -1
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()

	const total = 3000
	var done atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(i), 1))
			for !done.Load() {
				start, end := l.LogStartOffset(), l.LogEndOffset()
				if end == start {
					continue
				}
				off := start + r.Int64N(end-start)
				reg, err := l.Read(off, 1+r.Int64N(8<<10), -1)
				if err != nil {
					// Retention may have moved the start since we looked.
					if off < l.LogStartOffset() {
						continue
					}
					errs <- err
					return
				}
				b, err := reg.Bytes()
				reg.Release()
				if err != nil {
					errs <- err
					return
				}
				it := batch.NewIter(b)
				first := true
				var next int64
				for it.Next() {
					h, err := batch.Validate(it.Batch())
					if err != nil {
						errs <- err
						return
					}
					if first && (h.BaseOffset > off || h.LastOffset() < off) {
						t.Errorf("read at %d got batch %d..%d", off, h.BaseOffset, h.LastOffset())
					}
					if !first && h.BaseOffset != next {
						t.Errorf("offsets jump from %d to %d", next, h.BaseOffset)
					}
					first, next = false, h.LastOffset()+1
				}
				if it.Err() != nil || it.Partial() || first {
					t.Errorf("region at %d: err=%v partial=%v empty=%v", off, it.Err(), it.Partial(), first)
				}
				reads.Add(1)
			}
		})
	}
	r := rand.New(rand.NewPCG(42, 42))
	for i := range total {
		if _, err := l.Append(randomBatch(r, 1+r.IntN(5), 20+r.IntN(300)), 1); err != nil {
			t.Fatal(err)
		}
		if i%200 == 0 {
			if _, err := l.Retention(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Let the readers overlap the whole run, then stop them.
	testutil.Eventually(t, "readers to make progress", func() bool { return reads.Load() > 100 })
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
