package storage

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// crash stops the log as a killed process would: no flush, no trim, no
// checkpoint. Bytes already written stay in the files (the page cache
// survives a process crash).
func (l *Log) crash() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	for _, s := range l.segments() {
		s.crash()
	}
}

func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Logger = testLogger(t)
	return cfg
}

func openLog(t testing.TB, dir string, cfg Config) *Log {
	t.Helper()
	l, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return l
}

// entry is what the tests remember of one appended batch.
type entry struct {
	base, last int64
	bytes      []byte // as stored (offset and epoch rewritten)
	maxTs      int64
}

func appendRandom(t testing.TB, l *Log, r *rand.Rand, records, valueSize int, ts int64) entry {
	t.Helper()
	b := batchtest.Random(r, records, valueSize, ts)
	res, err := l.Append(b, 7)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	h, err := batch.Validate(b)
	if err != nil {
		t.Fatalf("appended batch no longer valid: %v", err)
	}
	if h.BaseOffset != res.BaseOffset || h.LastOffset() != res.LastOffset || h.PartitionLeaderEpoch != 7 {
		t.Fatalf("batch header %+v does not match result %+v", h, res)
	}
	return entry{base: res.BaseOffset, last: res.LastOffset, bytes: b, maxTs: h.MaxTimestamp}
}

// readAll reads every batch from offset to the log end in small fetches and
// returns them.
func readAll(t testing.TB, l *Log, from int64) [][]byte {
	t.Helper()
	var out [][]byte
	off := from
	for off < l.LogEndOffset() {
		r, err := l.Read(off, 3000, -1)
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		if r.Empty() {
			t.Fatalf("empty read at %d below log end %d", off, l.LogEndOffset())
		}
		b, err := r.Bytes()
		r.Release()
		if err != nil {
			t.Fatal(err)
		}
		it := batch.NewIter(b)
		for it.Next() {
			if _, err := batch.Validate(it.Batch()); err != nil {
				t.Fatalf("read batch at %d: %v", it.Header().BaseOffset, err)
			}
			out = append(out, bytes.Clone(it.Batch()))
			off = it.Header().LastOffset() + 1
		}
		if it.Err() != nil || it.Partial() {
			t.Fatalf("region at %d is not whole batches: err=%v partial=%v", off, it.Err(), it.Partial())
		}
	}
	return out
}

// checkContent asserts the log holds exactly want, in order.
func checkContent(t testing.TB, l *Log, want []entry) {
	t.Helper()
	start := l.LogStartOffset()
	var exp []entry
	for _, e := range want {
		if e.last >= start {
			exp = append(exp, e)
		}
	}
	wantEnd := start
	if len(exp) > 0 {
		wantEnd = exp[len(exp)-1].last + 1
	}
	if got := l.LogEndOffset(); got != wantEnd {
		t.Fatalf("log end offset %d, want %d", got, wantEnd)
	}
	got := readAll(t, l, start)
	if len(got) != len(exp) {
		t.Fatalf("read %d batches, want %d", len(got), len(exp))
	}
	for i := range got {
		if !bytes.Equal(got[i], exp[i].bytes) {
			t.Fatalf("batch %d (offset %d) differs", i, exp[i].base)
		}
	}
}

func fileSize(t testing.TB, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func segmentFiles(t testing.TB, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func waitDurable(t testing.TB, l *Log, r AppendResult) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return l.WaitDurable(ctx, r)
}

func mustNot(t testing.TB, err error, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v, want %v", err, target)
	}
}

var _ = io.EOF

func randomBatch(r *rand.Rand, records, size int) []byte {
	return batchtest.Random(r, records, size, 1000)
}

func newIterForFuzz(b []byte) *batch.Iter { return batch.NewIter(b) }

func parseHdr(b []byte) (batch.Header, error) { return batch.ParseHeader(b) }
