package storage

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
)

// recordingGroup is a syncGroup whose syncs are counted, and whose first
// sync waits for hold to close.
func recordingGroup(hold chan struct{}, fsErr error) (*syncGroup, *atomic.Int32, *atomic.Int32) {
	var files, fss atomic.Int32
	g := &syncGroup{}
	g.cond = sync.NewCond(&g.mu)
	first := true
	g.syncfile = func(*os.File) error {
		files.Add(1)
		if first {
			first = false
			<-hold
		}
		return nil
	}
	g.syncfs = func(int) error { fss.Add(1); return fsErr }
	return g, &files, &fss
}

func tempFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	var fs []*os.File
	for i := range n {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"+string(rune('a'+i))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		fs = append(fs, f)
	}
	return fs
}

// Callers that arrive while a sync runs are not covered by it (it may
// have started before their writes): they wait for the next round, which
// makes all of them durable with one syncfs.
func TestSyncerCombinesWaitersIntoOneRound(t *testing.T) {
	hold := make(chan struct{})
	g, files, fss := recordingGroup(hold, nil)
	fs := tempFiles(t, 11)
	var returned atomic.Int32
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := g.sync(fs[0]); err != nil {
			t.Error(err)
		}
		returned.Add(1)
	})
	testutil.Eventually(t, "the first round to start", func() bool { return files.Load() == 1 })
	for _, f := range fs[1:] {
		wg.Go(func() {
			if err := g.sync(f); err != nil {
				t.Error(err)
			}
			returned.Add(1)
		})
	}
	testutil.Eventually(t, "ten callers to queue behind the running round", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == 10
	})
	if n := returned.Load(); n != 0 {
		t.Fatalf("%d callers returned while the only sync was still running", n)
	}
	close(hold)
	wg.Wait()
	if files.Load() != 1 || fss.Load() != 1 {
		t.Fatalf("%d file syncs and %d syncfs for one caller and then ten together, want 1 and 1", files.Load(), fss.Load())
	}
}

// A failed round fails every caller in it; a later round that succeeds
// succeeds.
func TestSyncerReportsAFailedRoundToItsCallers(t *testing.T) {
	hold := make(chan struct{})
	boom := errors.New("EIO")
	g, _, _ := recordingGroup(hold, boom)
	fs := tempFiles(t, 4)
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.sync(fs[0]) })
	testutil.Eventually(t, "the first round to start", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.running
	})
	errs := make([]error, 3)
	for i, f := range fs[1:] {
		wg.Go(func() { errs[i] = g.sync(f) })
	}
	testutil.Eventually(t, "three callers to queue", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.pending) == 3
	})
	close(hold)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, boom) {
			t.Errorf("caller %d of the failed round got %v, want %v", i, err, boom)
		}
	}
	g.syncfs = func(int) error { return nil }
	if err := g.sync(fs[1]); err != nil {
		t.Fatalf("a round after the failure: %v", err)
	}
}

// Through the real system calls: files on one filesystem share a group and
// sync; a FaultFS file is fsynced on its own, so its injected fault
// reaches the caller.
func TestSyncerRealFilesAndFaultFS(t *testing.T) {
	s := NewSyncer()
	fs := tempFiles(t, 8)
	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() {
			if _, err := f.Write([]byte("data")); err != nil {
				t.Error(err)
			}
			if err := s.Sync(f); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if len(s.groups) != 1 {
		t.Fatalf("%d groups for files in one temp dir, want 1", len(s.groups))
	}
	ffs := NewFaultFS(nil)
	f, err := ffs.OpenFile(filepath.Join(t.TempDir(), "x"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ffs.FailNextSync(os.ErrInvalid)
	if err := s.Sync(f); !errors.Is(err, os.ErrInvalid) {
		t.Fatalf("FaultFS sync through the Syncer: %v, want the injected fault", err)
	}
	var nilSyncer *Syncer
	if err := nilSyncer.Sync(fs[0]); err != nil {
		t.Fatalf("nil Syncer: %v", err)
	}
}
