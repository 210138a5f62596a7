package storage

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/mlog/mlog/storage/batch"
)

// compactLog is a log with small segments for compaction tests.
func compactLog(t *testing.T, dir string) (*Log, Config) {
	cfg := testConfig(t)
	cfg.SegmentBytes = 64 << 10
	return openLog(t, dir, cfg), cfg
}

// appendKeyed appends one batch of records; a nil value is a tombstone.
func appendKeyed(t *testing.T, l *Log, recs ...batch.Record) AppendResult {
	t.Helper()
	res, err := l.Append(batch.Build(recs), 1)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// sealAll rolls the active segment and waits until every segment before
// it is durable, so that Compact may rewrite them all.
func sealAll(t *testing.T, l *Log) {
	t.Helper()
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	l.RequestFlush()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l.mu.Lock()
		done := len(l.unflushed) == 0
		l.mu.Unlock()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("rolled segments never became durable")
		}
		select {
		case <-l.DurableNotify():
		case <-time.After(10 * time.Millisecond):
		}
		l.RequestFlush()
	}
}

// records reads the whole log and returns its records, checking that every
// batch is valid and that offsets ascend.
func records(t *testing.T, l *Log) []batch.Record {
	t.Helper()
	var out []batch.Record
	last := int64(-1)
	for _, b := range readAll(t, l, l.LogStartOffset()) {
		rs, err := batch.Records(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Offset <= last {
				t.Fatalf("offset %d after %d", r.Offset, last)
			}
			last = r.Offset
		}
		out = append(out, rs...)
	}
	return out
}

func TestCompactKeyWrittenManyTimesLeavesOne(t *testing.T) {
	dir := t.TempDir()
	l, cfg := compactLog(t, dir)
	const n = 100_000
	for i := 0; i < n; i += 100 {
		recs := make([]batch.Record, 100)
		for j := range recs {
			recs[j] = batch.Record{Key: []byte("k"), Value: []byte(strconv.Itoa(i + j))}
		}
		appendKeyed(t, l, recs...)
	}
	appendKeyed(t, l, batch.Record{Key: []byte("other"), Value: []byte("x")})
	sealAll(t, l)
	segsBefore, sizeBefore := l.NumSegments(), l.Size()

	st, err := l.Compact(math.MaxInt64, int64(24*time.Hour/time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.RecordsRemoved != n-1 || st.Segments != segsBefore-1 {
		t.Fatalf("stats %+v, want %d records removed from %d segments", st, n-1, segsBefore-1)
	}
	check := func(l *Log) {
		t.Helper()
		got := records(t, l)
		if len(got) != 2 || string(got[0].Value) != strconv.Itoa(n-1) || got[0].Offset != n-1 ||
			string(got[1].Key) != "other" || got[1].Offset != n {
			t.Fatalf("after compaction: %+v", got)
		}
		if l.LogEndOffset() != n+1 || l.LogStartOffset() != 0 {
			t.Fatalf("offsets moved: [%d, %d)", l.LogStartOffset(), l.LogEndOffset())
		}
	}
	check(l)
	if l.Size() > sizeBefore/50 {
		t.Fatalf("log is %d bytes after compaction, %d before", l.Size(), sizeBefore)
	}
	// Every offset still reads: a consumer anywhere in a gap gets the next
	// surviving record.
	r, err := l.Read(5, 1<<20, -1)
	if err != nil || r.Empty() {
		t.Fatalf("read in a gap: %v empty=%v", err, r.Empty())
	}
	r.Release()
	// Appends go on after compaction; the result survives a clean reopen
	// and a crash.
	appendKeyed(t, l, batch.Record{Key: []byte("k"), Value: []byte("again")})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	if got := records(t, l); len(got) != 3 || string(got[2].Value) != "again" {
		t.Fatalf("after reopen: %d records", len(got))
	}
	l.crash()
	l = openLog(t, dir, cfg)
	defer l.Close()
	if got := records(t, l); len(got) != 3 || got[0].Offset != n-1 {
		t.Fatalf("after crash: %+v", got[:min(len(got), 3)])
	}
}

// A tombstone outlives delete.retention.ms counted from when its segment
// was written (the broker's clock), even with an old producer timestamp.
func TestCompactTombstones(t *testing.T) {
	now := time.Now()
	cfg := testConfig(t)
	cfg.SegmentBytes = 64 << 10
	cfg.Now = func() time.Time { return now }
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	ts := now.Add(-48 * time.Hour).UnixMilli() // the producer says two days ago
	appendKeyed(t, l, batch.Record{Timestamp: ts, Key: []byte("a"), Value: []byte("1")},
		batch.Record{Timestamp: ts, Key: []byte("b"), Value: []byte("1")})
	appendKeyed(t, l, batch.Record{Timestamp: ts, Key: []byte("a"), Value: nil}, // delete a
		batch.Record{Timestamp: ts, Key: nil, Value: []byte("no key")})
	sealAll(t, l)
	const retention = int64(time.Hour / time.Millisecond)
	if _, err := l.Compact(math.MaxInt64, retention, nil); err != nil {
		t.Fatal(err)
	}
	got := records(t, l)
	if len(got) != 3 || string(got[0].Key) != "b" || string(got[1].Key) != "a" || got[1].Value != nil || got[2].Key != nil {
		t.Fatalf("tombstone within delete.retention.ms: %+v", got)
	}
	now = now.Add(2 * time.Hour)
	if _, err := l.Compact(math.MaxInt64, retention, nil); err != nil {
		t.Fatal(err)
	}
	got = records(t, l)
	if len(got) != 2 || string(got[0].Key) != "b" || got[1].Key != nil {
		t.Fatalf("tombstone past delete.retention.ms: %+v", got)
	}
}

// A reader holding a region across a compaction keeps reading the old
// bytes; new reads see the compacted segment.
func TestCompactReaderKeepsOldSegment(t *testing.T) {
	l, _ := compactLog(t, t.TempDir())
	defer l.Close()
	for i := range 50 {
		appendKeyed(t, l, batch.Record{Key: []byte("k"), Value: []byte(strconv.Itoa(i))})
	}
	sealAll(t, l)
	r, err := l.Read(0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compact(math.MaxInt64, 0, nil); err != nil {
		t.Fatal(err)
	}
	b, err := r.Bytes()
	r.Release()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for it := batch.NewIter(b); it.Next(); n++ {
		if _, err := batch.Validate(it.Batch()); err != nil {
			t.Fatal(err)
		}
	}
	if n != 50 {
		t.Fatalf("held region has %d batches, want the 50 from before compaction", n)
	}
	if got := records(t, l); len(got) != 1 || string(got[0].Value) != "49" {
		t.Fatalf("after compaction: %+v", got)
	}
}

// A crash at any step of a compaction leaves the log readable and right:
// before the rename the old segment is there (a leftover .tmp is removed,
// missing indexes rebuilt); after it, the new one is.
func TestCompactCrashSafety(t *testing.T) {
	setup := func(t *testing.T) (string, Config, *Log, []batch.Record) {
		dir := t.TempDir()
		l, cfg := compactLog(t, dir)
		for i := range 2000 {
			appendKeyed(t, l, batch.Record{Key: []byte(fmt.Sprint("k", i%10)), Value: bytes.Repeat([]byte{byte(i)}, 40)})
		}
		sealAll(t, l)
		return dir, cfg, l, records(t, l)
	}

	t.Run("interrupted before the rename", func(t *testing.T) {
		dir, cfg, l, before := setup(t)
		l.crash()
		// What a compaction leaves when killed after removing the first
		// segment's indexes and writing half its .tmp.
		first := filepath.Join(dir, segmentName(0))
		for _, s := range []string{indexSuffix, timeIndexSuffix} {
			if err := os.Remove(first + s); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(first+compactSuffix, []byte("half a batch"), 0o644); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, cfg)
		defer l.Close()
		if got := records(t, l); len(got) != len(before) {
			t.Fatalf("%d records after the crash, want %d", len(got), len(before))
		}
		if _, err := os.Stat(first + compactSuffix); !os.IsNotExist(err) {
			t.Fatalf("leftover .tmp not removed: %v", err)
		}
		// And compaction then works on the recovered log.
		if _, err := l.Compact(math.MaxInt64, 0, nil); err != nil {
			t.Fatal(err)
		}
		if got := records(t, l); len(got) != 10 {
			t.Fatalf("%d records after compaction, want one per key (10)", len(got))
		}
	})

	t.Run("failed write of the new segment", func(t *testing.T) {
		dir := t.TempDir()
		cfg := testConfig(t)
		cfg.SegmentBytes = 64 << 10
		ffs := NewFaultFS(nil)
		cfg.FS = ffs
		l := openLog(t, dir, cfg)
		for i := range 2000 {
			appendKeyed(t, l, batch.Record{Key: []byte(fmt.Sprint("k", i%10)), Value: bytes.Repeat([]byte{byte(i)}, 40)})
		}
		sealAll(t, l)
		before := records(t, l)
		// Only the compacted copy's sync fails: a background flush still
		// queued from sealAll must not take the fault.
		ffs.FailNextSyncOf(compactSuffix, os.ErrInvalid)
		if _, err := l.Compact(math.MaxInt64, 0, nil); err == nil {
			t.Fatal("compaction succeeded with a failing fsync")
		}
		// Segments emptied before the failure are gone; the rest is as it
		// was, and every key's latest record is there.
		mid := records(t, l)
		checkCompactedFrom(t, before, mid)
		tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
		if len(tmps) != 0 {
			t.Fatalf("left behind: %v", tmps)
		}
		l.crash()
		l = openLog(t, dir, cfg)
		defer l.Close()
		if got := records(t, l); len(got) != len(mid) {
			t.Fatalf("%d records after reopen, want %d", len(got), len(mid))
		}
	})

	t.Run("crash right after", func(t *testing.T) {
		dir, cfg, l, before := setup(t)
		if _, err := l.Compact(math.MaxInt64, 0, nil); err != nil {
			t.Fatal(err)
		}
		after := records(t, l)
		if len(after) >= len(before) {
			t.Fatalf("compaction removed nothing: %d records", len(after))
		}
		l.crash()
		l = openLog(t, dir, cfg)
		defer l.Close()
		got := records(t, l)
		if len(got) != len(after) {
			t.Fatalf("%d records after the crash, want %d", len(got), len(after))
		}
		for i := range got {
			if got[i].Offset != after[i].Offset || !bytes.Equal(got[i].Value, after[i].Value) {
				t.Fatalf("record %d: %+v, want %+v", i, got[i], after[i])
			}
		}
	})
}

// checkCompactedFrom asserts that got is what some compaction of before may
// leave: a subset of its records, unchanged, holding each key's latest.
func checkCompactedFrom(t *testing.T, before, got []batch.Record) {
	t.Helper()
	byOffset := map[int64]batch.Record{}
	latest := map[string]int64{}
	for _, r := range before {
		byOffset[r.Offset] = r
		latest[string(r.Key)] = r.Offset
	}
	seen := map[int64]bool{}
	for _, r := range got {
		o, ok := byOffset[r.Offset]
		if !ok || !bytes.Equal(o.Key, r.Key) || !bytes.Equal(o.Value, r.Value) {
			t.Fatalf("record at %d not as before: %+v", r.Offset, r)
		}
		seen[r.Offset] = true
	}
	for k, off := range latest {
		if !seen[off] {
			t.Fatalf("latest record of %q (offset %d) lost", k, off)
		}
	}
}
