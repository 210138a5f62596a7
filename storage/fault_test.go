package storage

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mlog/mlog/internal/testutil"
)

func TestFailedWriteLeavesLogConsistent(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	ffs := NewFaultFS(nil)
	cfg.FS = ffs
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(1, 2))
	var es []entry
	for range 5 {
		es = append(es, appendRandom(t, l, r, 3, 100, 1000))
	}
	sizeBefore := fileSize(t, activeLog(t, dir))

	ffs.FailNextWrite(syscall.ENOSPC, 40) // a torn write: 40 bytes land
	_, err := l.Append(bytes.Clone(es[0].bytes), 0)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk: %v, want ENOSPC", err)
	}
	if got := fileSize(t, activeLog(t, dir)); got != sizeBefore {
		t.Fatalf("partial write left in the file: %d bytes, want %d", got, sizeBefore)
	}
	checkContent(t, l, es)
	// The fault cleared: appends go on at the right offset.
	e := appendRandom(t, l, r, 2, 100, 1000)
	if e.base != es[4].last+1 {
		t.Fatalf("append after fault at %d, want %d", e.base, es[4].last+1)
	}
	es = append(es, e)
	checkContent(t, l, es)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, es)
}

func TestFailedWriteThatCannotBeUndoneFailsTheLogUntilReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	ffs := NewFaultFS(nil)
	cfg.FS = ffs
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(3, 4))
	es := []entry{appendRandom(t, l, r, 3, 100, 1000)}

	ffs.FailNextWrite(syscall.EIO, 50)
	ffs.FailNextTruncate(syscall.EIO)
	_, err := l.Append(bytes.Clone(es[0].bytes), 0)
	mustNot(t, err, ErrLogFailed)
	_, err = l.Append(bytes.Clone(es[0].bytes), 0)
	mustNot(t, err, ErrLogFailed)
	// Readers still see only whole batches.
	checkContent(t, l, es)
	l.crash()
	// Recovery cuts the torn 50 bytes.
	reopenAndCheck(t, dir, cfg, es)
}

func TestFailedSyncCutsBackToDurableOffset(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	ffs := NewFaultFS(nil)
	cfg.FS = ffs
	l := openLog(t, dir, cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(5, 6))
	var es []entry
	var last AppendResult
	for range 3 {
		e := appendRandom(t, l, r, 2, 100, 1000)
		es = append(es, e)
		last = AppendResult{BaseOffset: e.base, LastOffset: e.last, gen: l.gen.Load()}
	}
	if err := waitDurable(t, l, last); err != nil {
		t.Fatal(err)
	}
	if l.DurableOffset() != es[2].last+1 {
		t.Fatalf("durable offset %d", l.DurableOffset())
	}
	b := appendRandom(t, l, r, 2, 100, 1000)
	ffs.FailNextSync(syscall.EIO)
	err := waitDurable(t, l, AppendResult{BaseOffset: b.base, LastOffset: b.last, gen: l.gen.Load() - 0})
	mustNot(t, err, ErrNotDurable)
	// The batch that may not be on disk is gone; the log goes on from there.
	checkContent(t, l, es)
	b2 := appendRandom(t, l, r, 2, 100, 1000)
	if b2.base != b.base {
		t.Fatalf("append after failed sync at %d, want %d", b2.base, b.base)
	}
	if err := waitDurable(t, l, AppendResult{BaseOffset: b2.base, LastOffset: b2.last, gen: l.gen.Load()}); err != nil {
		t.Fatal(err)
	}
	checkContent(t, l, append(es, b2))
}

// gateFS blocks Sync of .log files until the gate opens, and counts them.
type gateFS struct {
	FS
	syncs atomic.Int32
	gate  chan struct{}
}

type gateFile struct {
	File
	g *gateFS
}

func (g *gateFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := g.FS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, logSuffix) {
		return f, err
	}
	return gateFile{f, g}, nil
}

func (f gateFile) Sync() error {
	f.g.syncs.Add(1)
	<-f.g.gate
	return f.File.Sync()
}

func TestGroupCommitSharesOneSync(t *testing.T) {
	cfg := testConfig(t)
	g := &gateFS{FS: OSFS{}, gate: make(chan struct{})}
	cfg.FS = g
	l := openLog(t, t.TempDir(), cfg)
	defer func() {
		select {
		case <-g.gate:
		default:
			close(g.gate)
		}
		l.Close()
	}()
	r := rand.New(rand.NewPCG(7, 8))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The first waiter starts a sync, which the gate holds.
	first, err := l.Append(appendBytes(r), 0)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 100)
	go func() { errs <- l.WaitDurable(ctx, first) }()
	testutil.Eventually(t, "the first sync to start", func() bool { return g.syncs.Load() == 1 })

	// Many more appenders arrive while it runs.
	const writers = 50
	var wg sync.WaitGroup
	for range writers {
		b := appendBytes(r)
		wg.Go(func() {
			res, err := l.Append(b, 0)
			if err != nil {
				errs <- err
				return
			}
			errs <- l.WaitDurable(ctx, res)
		})
	}
	testutil.Eventually(t, "all appends", func() bool { return l.LogEndOffset() == writers+1 })
	close(g.gate)
	wg.Wait()
	for range writers + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	// One sync for the first and one for the other fifty; a waiter that
	// checked just before a flush finished may queue one more request, so
	// a few extra flushes can follow under load, never one per waiter.
	if n := g.syncs.Load(); n > 5 {
		t.Fatalf("%d syncs for %d waiters: the flush is not shared", n, writers+1)
	}
	if l.DurableOffset() != writers+1 {
		t.Fatalf("durable offset %d", l.DurableOffset())
	}
}

func appendBytes(r *rand.Rand) []byte {
	return randomBatch(r, 1, 100)
}
