package storage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/mlog/mlog/storage/batch"
)

// logModel is the simplest thing that behaves like a log: a list of batches
// and a start offset.
type logModel struct {
	batches []entry
	start   int64
	end     int64
}

func (m *logModel) visible() []entry {
	var out []entry
	for _, e := range m.batches {
		if e.last >= m.start {
			out = append(out, e)
		}
	}
	return out
}

// checkRead compares a read at offset with the model: the region must start
// with the batch holding offset, continue with the model's next batches byte
// for byte, and respect maxBytes.
func (m *logModel) checkRead(t *testing.T, l *Log, offset, maxBytes int64) {
	t.Helper()
	reg, err := l.Read(offset, maxBytes, -1)
	if offset < m.start || offset > m.end {
		if !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read at %d outside [%d, %d]: err %v", offset, m.start, m.end, err)
		}
		return
	}
	if err != nil {
		t.Fatalf("read at %d: %v", offset, err)
	}
	b, err := reg.Bytes()
	reg.Release()
	if err != nil {
		t.Fatal(err)
	}
	vis := m.visible()
	i := 0
	for i < len(vis) && vis[i].last < offset {
		i++
	}
	if i == len(vis) {
		if len(b) != 0 {
			t.Fatalf("read at end %d returned %d bytes", offset, len(b))
		}
		return
	}
	if len(b) == 0 {
		t.Fatalf("read at %d returned nothing; log ends at %d", offset, m.end)
	}
	it := batch.NewIter(b)
	n := 0
	for it.Next() {
		if i+n >= len(vis) || !bytes.Equal(it.Batch(), vis[i+n].bytes) {
			t.Fatalf("read at %d: batch %d of the region differs from the model", offset, n)
		}
		n++
	}
	if it.Err() != nil || it.Partial() {
		t.Fatalf("read at %d: not whole batches", offset)
	}
	if n > 1 && int64(len(b)) > maxBytes {
		t.Fatalf("read at %d returned %d bytes in %d batches, over maxBytes %d", offset, len(b), n, maxBytes)
	}
}

func TestLogAgainstModel(t *testing.T) {
	seeds := 8
	steps := 400
	if testing.Short() {
		seeds, steps = 3, 200
	}
	for seed := range uint64(seeds) {
		r := rand.New(rand.NewPCG(seed, 1234))
		dir := t.TempDir()
		cfg := testConfig(t)
		cfg.SegmentBytes = 1024 + r.Int64N(4096)
		cfg.IndexIntervalBytes = r.Int64N(1024)
		cfg.RetentionBytes = 8192 + r.Int64N(16384)
		cfg.RetentionMs = -1
		l := openLog(t, dir, cfg)
		m := &logModel{}
		var trace []string
		defer func() {
			if t.Failed() {
				t.Logf("seed %d trace: %v", seed, trace)
			}
			l.Close()
		}()
		for step := range steps {
			switch op := r.IntN(100); {
			case op < 50:
				trace = append(trace, "append")
				e := appendRandom(t, l, r, 1+r.IntN(6), r.IntN(200), 1000+int64(step))
				if e.base != m.end {
					t.Fatalf("append at %d, model end %d", e.base, m.end)
				}
				m.batches = append(m.batches, e)
				m.end = e.last + 1
			case op < 70:
				trace = append(trace, "read")
				off := m.start - 2 + r.Int64N(m.end-m.start+4)
				m.checkRead(t, l, off, 1+r.Int64N(3000))
			case op < 75:
				trace = append(trace, "roll")
				if err := l.Roll(); err != nil {
					t.Fatal(err)
				}
			case op < 82:
				vis := m.visible()
				if len(vis) == 0 {
					continue
				}
				k := r.IntN(len(vis))
				at := vis[k].base
				if r.IntN(3) == 0 {
					at += r.Int64N(vis[k].last - vis[k].base + 1) // mid-batch
				}
				trace = append(trace, "truncate")
				if err := l.TruncateTo(at); err != nil {
					t.Fatal(err)
				}
				if at <= m.start {
					m.batches, m.start, m.end = nil, at, at
				} else {
					// The batch holding at goes whole.
					keep := m.batches[:0]
					for _, e := range m.batches {
						if e.last < at {
							keep = append(keep, e)
						}
					}
					m.batches, m.end = keep, vis[k].base
				}
			case op < 87:
				trace = append(trace, "retention")
				if _, err := l.Retention(); err != nil {
					t.Fatal(err)
				}
				ns := l.LogStartOffset()
				if ns < m.start || ns > m.end {
					t.Fatalf("retention moved the start from %d to %d (end %d)", m.start, ns, m.end)
				}
				if ns != m.start && ns != m.end {
					found := false
					for _, e := range m.batches {
						found = found || e.base == ns
					}
					if !found {
						t.Fatalf("log start %d is not a batch boundary", ns)
					}
				}
				m.start = ns
				if l.Size() > cfg.RetentionBytes+cfg.SegmentBytes+int64(cfg.MaxBatchBytes) && l.NumSegments() > 1 {
					t.Fatalf("log is %d bytes after retention.bytes %d", l.Size(), cfg.RetentionBytes)
				}
			case op < 93:
				trace = append(trace, "close+open")
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				l = openLog(t, dir, cfg)
			default:
				trace = append(trace, "crash+open")
				l.crash()
				l = openLog(t, dir, cfg)
			}
			if testing.Verbose() {
				t.Logf("step %d %s: log [%d, %d) segs %d", step, trace[len(trace)-1], l.LogStartOffset(), l.LogEndOffset(), l.NumSegments())
			}
			if l.LogEndOffset() != m.end || l.LogStartOffset() != m.start {
				t.Fatalf("step %d: log [%d, %d), model [%d, %d)", step, l.LogStartOffset(), l.LogEndOffset(), m.start, m.end)
			}
		}
		checkContent(t, l, m.visible())
	}
}
