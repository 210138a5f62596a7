package storage

// Regressions found in review: each test failed (or crashed the process
// with SIGBUS) before its fix.

import (
	"bytes"
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlog/mlog/storage/batch"
)

// R1: Read after Close never returns (errSegmentGone retried forever).
func TestRegressionReadAfterCloseSpins(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig(t))
	appendRandom(t, l, rand.New(rand.NewPCG(1, 2)), 2, 10, 1000)
	l.Close()
	done := make(chan error, 1)
	go func() { _, err := l.Read(0, 1000, -1); done <- err }()
	select {
	case err := <-done:
		mustNot(t, err, ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Read after Close spins forever")
	}
}

// R2: WaitDurable on a failed log blocks until ctx/close.
func TestRegressionWaitDurableHangsOnFailedLog(t *testing.T) {
	cfg := testConfig(t)
	ffs := NewFaultFS(nil)
	cfg.FS = ffs
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 4))
	b := randomBatch(r, 3, 100)
	res, err := l.Append(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	ffs.FailNextWrite(syscall.EIO, 50)
	ffs.FailNextTruncate(syscall.EIO)
	_, err = l.Append(randomBatch(r, 3, 100), 0)
	mustNot(t, err, ErrLogFailed)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := l.WaitDurable(ctx, res); errors.Is(err, context.DeadlineExceeded) || (err != nil && !errors.Is(err, ErrLogFailed)) {
		t.Fatalf("WaitDurable on a failed log: %v, want nil (if the first batch was synced) or ErrLogFailed", err)
	}
}

// R3: AppendReplicated with offsets > 2^32 above the segment base: rel wraps.
// Only a compacted log may take a batch above its end (the cleaner's holes).
func TestRegressionReplicatedRelOverflow(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.IndexIntervalBytes = 1
	cfg.Compact = true
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(5, 6))
	const base = int64(5_000_000_000)
	var es []entry
	off := base
	for range 1 {
		b := randomBatch(r, 2, 50)
		batch.SetBaseOffset(b, off)
		res, err := l.AppendReplicated(b)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, entry{base: res.BaseOffset, last: res.LastOffset, bytes: bytes.Clone(b)})
		off = res.LastOffset + 1
	}
	reg, err := l.Read(base, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := reg.Bytes()
	reg.Release()
	it := batch.NewIter(got)
	it.Next()
	if it.Header().BaseOffset != base {
		t.Errorf("Read(%d) returned batch at %d", base, it.Header().BaseOffset)
	}
	l.crash()
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.LogEndOffset() != off {
		t.Fatalf("after crash recovery leo=%d, want %d (replicated data cut)", l.LogEndOffset(), off)
	}
}

// R4: a reader that acquired a lazily-indexed segment before Reset rebuilds
// "its" index by path, clobbering the new segment of the same name.
func TestRegressionLazyRebuildClobbersNewSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 64
	cfg.MaxIndexBytes = 64 << 10
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(7, 8))
	for range 40 {
		appendRandom(t, l, r, 2, 100, 1000)
	}
	l.Close()
	cfg.SegmentBytes = 1 << 30
	l = openLog(t, dir, cfg) // clean: segment 0's index is lazy
	defer l.Close()
	old := l.segments()[0]
	if old.ix.Load() != nil || !old.acquire() {
		t.Fatal("setup")
	}
	if err := l.Reset(0); err != nil { // new segment 00..0 at the same path
		t.Fatal(err)
	}
	if _, err := old.indexes(); err != nil { // what a concurrent Read does
		t.Log(err)
	}
	old.release()
	sz := fileSize(t, filepath.Join(dir, segmentName(0)+indexSuffix))
	if want := min(cfg.indexBytes(offsetEntrySize), initialIndexAlloc); sz != want {
		t.Errorf("active segment's preallocated index is now %d bytes, want %d (stores past it SIGBUS)", sz, want)
	}
	for range 2000 { // index entries go past the trimmed size
		appendRandom(t, l, r, 2, 100, 1000)
	}
}

// R5: crash in the middle of Reset/TruncateTo(<= start) resurrects the old data.
func TestRegressionCrashDuringResetResurrects(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(9, 10))
	for range 10 {
		appendRandom(t, l, r, 2, 10, 1000)
	}
	l.Close()
	// Reproduce the on-disk state after resetLocked wrote the checkpoint
	// (start=rp=500) and crashed before removing the old segment.
	if err := writeCheckpoint(OSFS{}, dir, checkpoint{recoveryPoint: 500, logStartOffset: 500}); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	if l.LogStartOffset() != 500 || l.LogEndOffset() != 500 {
		t.Errorf("after crash in Reset(500): start=%d leo=%d, want 500/500", l.LogStartOffset(), l.LogEndOffset())
	}
}

// R6: a reader holding the index mapping across TruncateTo+Roll touches
// entries beyond the trimmed file: SIGBUS.
func TestRegressionStaleIndexAfterTruncateRollSigbus(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.IndexIntervalBytes = 1 // one entry per batch
	l := openLog(t, dir, cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(11, 12))
	for range 3000 {
		appendRandom(t, l, r, 1, 1, 1000)
	}
	seg := l.active()
	ix := seg.ix.Load()
	n := ix.off.entries() // a reader's sort.Search loaded n ...
	if err := l.TruncateTo(10); err != nil {
		t.Fatal(err)
	}
	appendRandom(t, l, r, 1, 1, 1000)
	if err := l.Roll(); err != nil {
		t.Fatal(err)
	}
	// ... and now reads an entry: this used to die with SIGBUS.
	if rel, _ := ix.off.at(n - 1); rel == 0 {
		t.Fatalf("stale entry %d reads as zero", n-1)
	}
}

// R7: maxBytes near MaxInt64 overflows start+maxBytes: one batch returned.
func TestRegressionMaxBytesOverflow(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig(t))
	defer l.Close()
	r := rand.New(rand.NewPCG(13, 14))
	for range 5 {
		appendRandom(t, l, r, 1, 10, 1000)
	}
	reg, err := l.Read(1, math.MaxInt64, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Release()
	if reg.Size != l.Size()-reg.Position {
		t.Errorf("Read(1, MaxInt64) returned %d bytes of %d", reg.Size, l.Size()-reg.Position)
	}
}

type failTimeIndexFS struct {
	FS
	arm atomic.Bool
}

func (f *failTimeIndexFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if strings.HasSuffix(name, timeIndexSuffix) && f.arm.CompareAndSwap(true, false) {
		return nil, &os.PathError{Op: "open", Path: name, Err: syscall.ENOSPC}
	}
	return f.FS.OpenFile(name, flag, perm)
}

// R8: a failed roll leaves an empty <leo>.log behind; appends continue in the
// old segment; on reopen the orphan becomes the active segment and the old
// segment's tail is lost (offsets reassigned).
func TestRegressionFailedRollOrphanLosesData(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	ffs := &failTimeIndexFS{FS: OSFS{}}
	cfg.FS = ffs
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(1, 2))
	var es []entry
	for range 5 {
		es = append(es, appendRandom(t, l, r, 2, 10, 1000))
	}
	ffs.arm.Store(true)
	if err := l.Roll(); err == nil {
		t.Fatal("roll should fail")
	}
	for range 5 {
		es = append(es, appendRandom(t, l, r, 2, 10, 1000))
	}
	checkContent(t, l, es)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(segmentFiles(t, dir, logSuffix)); n != 1 {
		t.Fatalf("a failed roll left %d segment files, want 1", n)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, es)
}

// R9: Reset forward leaves flushed below the new start; a later fsync failure
// "cuts back" by resetting the log start backwards.
func TestRegressionSyncFailAfterResetMovesStartBack(t *testing.T) {
	cfg := testConfig(t)
	ffs := NewFaultFS(nil)
	cfg.FS = ffs
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 4))
	for range 5 {
		appendRandom(t, l, r, 2, 10, 1000)
	}
	if err := l.Reset(500); err != nil {
		t.Fatal(err)
	}
	if l.DurableOffset() != 500 {
		t.Fatalf("after Reset(500) the durable offset is %d", l.DurableOffset())
	}
	e := appendRandom(t, l, r, 2, 10, 1000)
	ffs.FailNextSync(syscall.EIO)
	_ = waitDurable(t, l, AppendResult{BaseOffset: e.base, LastOffset: e.last, gen: l.gen.Load()})
	if l.LogStartOffset() < 500 {
		t.Errorf("after failed sync: start=%d leo=%d, start went below the reset offset 500", l.LogStartOffset(), l.LogEndOffset())
	}
}

func TestRegressionTruncateNegative(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(1, 2))
	appendRandom(t, l, r, 2, 10, 1000)
	if err := l.TruncateTo(-3); err != nil {
		t.Fatal(err)
	}
	e := appendRandom(t, l, r, 2, 10, 1000)
	if e.base != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("TruncateTo(-3) then append: start %d, appended at %d; want 0, 0", l.LogStartOffset(), e.base)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, []entry{e})
}
