package storage

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Syncer shares fsyncs among the logs of one broker. Each log still has its
// own flusher (its group commit), but a flusher that needs its active
// segment durable asks the Syncer: callers arriving while a round runs are
// gathered for the next one, and a round with several files makes them all
// durable with one syncfs(2) of their filesystem (a round with one file
// fsyncs just that file). With thousands of partitions written at once, a
// broker then issues a few syncs per round trip of the disk instead of one
// fsync per partition, each waking its own goroutine and each a journal
// commit of its own.
//
// syncfs reports a write-back error of any file on the filesystem (Linux
// 5.8 and later), so after a failed round every log in it treats its data
// as not durable, as after a failed fsync. The kernel reports such an error
// once per open file, and a round syncs through one caller's file, so
// later rounds led by files opened before the error may report it again:
// their logs also cut back what is not yet acknowledged, which is safe and
// ends once each open file has reported it. Files that are not *os.File
// (FaultFS in tests) are fsynced on their own, so fault injection still
// applies.
type Syncer struct {
	mu     sync.Mutex
	groups map[uint64]*syncGroup // by device: syncfs covers one filesystem
}

// NewSyncer returns a Syncer for the logs that share it.
func NewSyncer() *Syncer { return &Syncer{groups: map[uint64]*syncGroup{}} }

// syncGroup runs the rounds of one filesystem. A caller waits for the
// first round that starts after it arrived: an fsync already running may
// have begun before the caller's writes.
type syncGroup struct {
	mu       sync.Mutex
	cond     *sync.Cond
	started  uint64     // rounds started
	done     uint64     // rounds finished
	running  bool       // a round is in its sync
	pending  []*os.File // files of the callers waiting for round started+1
	failed   uint64     // last round whose sync failed
	failure  error
	syncfs   func(fd int) error
	syncfile func(f *os.File) error
}

// Sync returns once f's written data (and every other file's written
// before the call, if the round used syncfs) is durable.
func (s *Syncer) Sync(f File) error {
	of, ok := f.(*os.File)
	if !ok || s == nil {
		return f.Sync()
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(of.Fd()), &st); err != nil {
		return f.Sync()
	}
	return s.group(st.Dev).sync(of)
}

func (s *Syncer) group(dev uint64) *syncGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groups[dev]
	if g == nil {
		g = &syncGroup{syncfs: unix.Syncfs, syncfile: (*os.File).Sync}
		g.cond = sync.NewCond(&g.mu)
		s.groups[dev] = g
	}
	return g
}

func (g *syncGroup) sync(f *os.File) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	ticket := g.started + 1
	g.pending = append(g.pending, f)
	for g.done < ticket {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.runLocked()
	}
	if g.failed >= ticket {
		return g.failure
	}
	return nil
}

// runLocked runs one round for the pending callers, with mu released
// during the sync.
func (g *syncGroup) runLocked() {
	files := g.pending
	g.pending = nil
	g.started++
	g.running = true
	g.mu.Unlock()
	var err error
	if len(files) == 1 {
		err = g.syncfile(files[0])
	} else if err = g.syncfs(int(files[0].Fd())); err != nil {
		err = fmt.Errorf("storage: syncfs (%d files, %s among them): %w", len(files), files[0].Name(), err)
	}
	g.mu.Lock()
	g.running = false
	g.done = g.started
	if err != nil {
		g.failed, g.failure = g.done, err
	}
	g.cond.Broadcast()
}
