package storage

import (
	"math/rand/v2"
	"testing"

	"github.com/mlog/mlog/storage/batch/batchtest"
)

// SetConfig changes an open log: a smaller segment.bytes rolls at the next
// append, max.message.bytes refuses the next bigger batch, and a
// retention.bytes set afterwards deletes old segments on the next pass —
// none of which the settings it was opened with would do.
func TestSetConfigAppliesToTheOpenLog(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentBytes, cfg.RetentionBytes, cfg.RetentionMs = 1<<20, -1, -1
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(41, 42))
	var es []entry
	for range 20 {
		es = append(es, appendRandom(t, l, r, 2, 300, 1000))
	}
	if l.NumSegments() != 1 {
		t.Fatalf("%d segments before the change, want 1", l.NumSegments())
	}
	next := cfg
	next.SegmentBytes, next.MaxBatchBytes = 2048, 1500
	if err := l.SetConfig(next); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		es = append(es, appendRandom(t, l, r, 2, 300, 1000))
	}
	if l.NumSegments() < 5 {
		t.Fatalf("%d segments after segment.bytes=2048, want rolls", l.NumSegments())
	}
	_, err := l.Append(batchtest.Random(r, 10, 300, 1000), 0)
	mustNot(t, err, ErrBatchTooLarge)
	if n, err := l.Retention(); err != nil || n != 0 {
		t.Fatalf("retention before retention.bytes is set: %d segments, %v", n, err)
	}
	next.RetentionBytes = 4096
	if err := l.SetConfig(next); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Retention(); err != nil || n == 0 {
		t.Fatalf("retention after retention.bytes=4096: %d segments, %v", n, err)
	}
	if l.LogStartOffset() == 0 || l.Size() > 4096+2048 {
		t.Fatalf("log start %d, size %d after retention", l.LogStartOffset(), l.Size())
	}
	bad := next
	bad.SegmentBytes = 0
	if err := l.SetConfig(bad); err == nil {
		t.Fatal("an invalid config was applied")
	}
	checkContent(t, l, es)
}

// AdvanceStart (DeleteRecords) moves the log start into the middle of a
// segment: reads below it fail, whole segments below it go, the rest
// reads as before, and the start survives a reopen. Past the log end it
// is refused; below the start it changes nothing.
func TestAdvanceStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentBytes = 2048
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(43, 44))
	var es []entry
	for range 30 {
		es = append(es, appendRandom(t, l, r, 2, 200, 1000))
	}
	before := l.NumSegments()
	mid := es[17].base + 1 // inside a batch, inside a segment
	if err := l.AdvanceStart(mid); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != mid || l.NumSegments() >= before {
		t.Fatalf("start %d (want %d), segments %d of %d", l.LogStartOffset(), mid, l.NumSegments(), before)
	}
	if got := len(segmentFiles(t, dir, logSuffix)); got != l.NumSegments() {
		t.Fatalf("%d segment files on disk, log has %d", got, l.NumSegments())
	}
	_, err := l.Read(mid-1, 100, -1)
	mustNot(t, err, ErrOffsetOutOfRange)
	if err := l.AdvanceStart(5); err != nil || l.LogStartOffset() != mid {
		t.Fatalf("advancing backwards: %v, start %d", err, l.LogStartOffset())
	}
	err = l.AdvanceStart(l.LogEndOffset() + 1)
	mustNot(t, err, ErrOffsetOutOfRange)
	checkContent(t, l, es[17:])
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.LogStartOffset() != mid {
		t.Fatalf("start %d after reopening, want %d", l.LogStartOffset(), mid)
	}
}
