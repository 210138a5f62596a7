package storage

// Compaction regressions found in review: each lost or corrupted records,
// or blew up, before its fix.

import (
	"bytes"
	"compress/gzip"
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/storage/batch"
)

// hookFS runs hook once, when a compaction's .tmp file is created.
type hookFS struct {
	FS
	hook func()
}

func (h *hookFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if strings.HasSuffix(name, compactSuffix) && h.hook != nil {
		f := h.hook
		h.hook = nil
		f()
	}
	return h.FS.OpenFile(name, flag, perm)
}

func kv(k, v string) batch.Record { return batch.Record{Key: []byte(k), Value: []byte(v)} }

// A record above the high watermark (it may still be truncated away) must
// not supersede a committed one.
func TestRegressionCompactStopsAtHighWatermark(t *testing.T) {
	l, _ := compactLog(t, t.TempDir())
	defer l.Close()
	appendKeyed(t, l, kv("k", "committed")) // offset 0, below the high watermark
	sealAll(t, l)
	appendKeyed(t, l, kv("k", "uncommitted")) // offset 1, above it
	sealAll(t, l)
	if _, err := l.Compact(1, -1, nil); err != nil {
		t.Fatal(err)
	}
	if err := l.TruncateTo(1); err != nil { // the follower meets the new leader
		t.Fatal(err)
	}
	got := records(t, l)
	if len(got) != 1 || string(got[0].Value) != "committed" {
		t.Fatalf("after compaction and truncation: %+v", got)
	}
}

// A truncation, append and roll between compaction's scan and its swap:
// the stale rewrite must not replace the segment.
func TestRegressionCompactRacesTruncate(t *testing.T) {
	cfg := testConfig(t)
	hf := &hookFS{FS: OSFS{}}
	cfg.FS = hf
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	appendKeyed(t, l, kv("k", "a0"))  // 0
	appendKeyed(t, l, kv("k", "a1"))  // 1
	appendKeyed(t, l, kv("x", "old")) // 2
	sealAll(t, l)
	appendKeyed(t, l, kv("y", "b")) // 3
	sealAll(t, l)
	hf.hook = func() {
		if err := l.TruncateTo(2); err != nil {
			t.Error(err)
		}
		appendKeyed(t, l, kv("z", "NEW")) // offset 2
		if err := l.Flush(context.Background()); err != nil {
			t.Error(err)
		}
		if err := l.Roll(); err != nil {
			t.Error(err)
		}
	}
	if _, err := l.Compact(math.MaxInt64, -1, nil); err != nil {
		t.Fatal(err)
	}
	got := records(t, l)
	if len(got) != 3 || string(got[2].Key) != "z" || got[2].Offset != 2 {
		t.Fatalf("after a truncation during compaction: %+v", got)
	}
}

// A compressed batch is rewritten only if that does not make it bigger: a
// small, highly compressed batch must not grow the log by its expansion.
func TestRegressionCompactNeverGrowsTheLog(t *testing.T) {
	l, _ := compactLog(t, t.TempDir())
	defer l.Close()
	raw := batch.EncodeRecords([]kmsg.Record{{Key: []byte("d"), Value: []byte("old")}, {OffsetDelta: 1, Key: []byte("big"), Value: make([]byte, 8<<20)}})
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rb := kmsg.RecordBatch{Magic: 2, Attributes: 1, LastOffsetDelta: 1, ProducerID: -1, ProducerEpoch: -1,
		FirstSequence: -1, NumRecords: 2, Records: buf.Bytes()}
	if _, err := l.Append(batch.EncodeBatch(&rb), 1); err != nil {
		t.Fatal(err)
	}
	appendKeyed(t, l, kv("d", "new")) // supersedes a record inside the gzip batch
	sealAll(t, l)
	before := l.Size()
	if _, err := l.Compact(math.MaxInt64, -1, nil); err != nil {
		t.Fatal(err)
	}
	if l.Size() > before {
		t.Fatalf("compaction grew the log from %d to %d bytes", before, l.Size())
	}
}
