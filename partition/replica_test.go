package partition

// Follower-side safety: each test here failed before its fix (issue 9,
// defects 1, 3, 4 and 5).

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
)

// epochAt is the epoch the cache puts offset in.
func epochAt(p *Partition, offset int64) int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := int32(UndefinedEpoch)
	for _, en := range p.epochs.entries {
		if en.start <= offset {
			e = en.epoch
		}
	}
	return e
}

// A fetch reply is applied only at the log end and in the epoch it was
// asked for: a long poll answered by the old leader after the follower
// truncated for the new one must not be appended.
func TestStaleFetchReplyRefused(t *testing.T) {
	leader, f := openReplica(t), openReplica(t)
	if err := leader.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := leader.Append(plain(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.SetRole(Role{Self: 2, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	reg, _ := leader.Log().Read(2, 1<<20, -1) // a reply for fetch offset 2
	stale, _ := reg.Bytes()
	reg.Release()
	copyFrom(t, leader, f, 0)
	if _, err := f.AppendReplicated(stale, 2, 1); !errors.Is(err, ErrStaleFetch) {
		t.Fatalf("reply for offset 2 applied at log end %d: %v", f.LogEndOffset(), err)
	}
	// The follower moves to epoch 2 (a new leader): a reply fetched in
	// epoch 1 at its current end is still stale.
	if err := f.SetRole(Role{Self: 2, LeaderID: 3, Epoch: 2, Replicas: []int32{1, 2, 3}, ISR: []int32{2, 3}}); err != nil {
		t.Fatal(err)
	}
	reg, _ = leader.Log().Read(0, 1<<20, -1)
	all, _ := reg.Bytes()
	reg.Release()
	if err := f.TruncateTo(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.AppendReplicated(all, 0, 1); !errors.Is(err, ErrStaleFetch) {
		t.Fatalf("reply fetched in epoch 1 applied in epoch 2: %v", err)
	}
	if f.LogEndOffset() != 0 {
		t.Fatalf("log end %d after refused replies, want 0", f.LogEndOffset())
	}
}

// A follower never truncates below the high watermark it learned (the
// records there are committed) unless its topic allows unclean election.
func TestTruncateBelowHighWatermarkRefused(t *testing.T) {
	leader, f := openReplica(t), openReplica(t)
	if err := leader.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := leader.Append(plain(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	role := Role{Self: 2, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}
	if err := f.SetRole(role); err != nil {
		t.Fatal(err)
	}
	copyFrom(t, leader, f, 0)
	f.SetHighWatermark(3)
	if err := f.TruncateTo(1); !errors.Is(err, ErrBelowHighWatermark) {
		t.Fatalf("truncation to 1 under high watermark 3: %v", err)
	}
	if err := f.TruncateTo(3); err != nil || f.LogEndOffset() != 3 {
		t.Fatalf("truncation to the high watermark: %v, end %d", err, f.LogEndOffset())
	}
	role.Unclean, role.PartitionEpoch = true, 1
	if err := f.SetRole(role); err != nil {
		t.Fatal(err)
	}
	if err := f.TruncateTo(1); err != nil || f.LogEndOffset() != 1 {
		t.Fatalf("unclean truncation: %v, end %d", err, f.LogEndOffset())
	}
}

// The high watermark reaches partition.state without a clean close, so a
// replica killed and restarted still knows what was committed.
func TestHighWatermarkCheckpointWithoutClose(t *testing.T) {
	p := openReplica(t)
	leadAlone(t, p)
	for range 3 {
		if _, err := p.Append(plain("x")); err != nil {
			t.Fatal(err)
		}
	}
	if hw := p.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d, want 3", hw)
	}
	if err := p.CheckpointHighWatermark(); err != nil {
		t.Fatal(err)
	}
	if got := loadHighWatermark(p.cfg.Dir); got != 3 {
		t.Fatalf("partition.state holds %d, want 3", got)
	}
}

// Recovery that cut a torn tail also cuts the epochs that started in it:
// otherwise OffsetForLeaderEpoch answers with offsets the log lacks.
func TestOpenTrimsEpochCacheToLogEnd(t *testing.T) {
	dir := t.TempDir()
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	cfg := Config{Topic: "t", Dir: dir, Log: lc, Logger: lc.Logger}
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leadAlone(t, p)
	for range 2 {
		if _, err := p.Append(plain("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	// Epochs 2 and 3 began at offsets 2 and 5, whose records the crash
	// took with it.
	if err := os.WriteFile(filepath.Join(dir, epochFileName), []byte("0\n3\n1 0\n2 2\n3 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if e := p.LatestEpoch(); e != 1 {
		t.Fatalf("latest epoch %d after reopen at log end 2, want 1", e)
	}
	if e, end := p.EndOffsetForEpoch(3); e != 1 || end != 2 {
		t.Fatalf("end offset for epoch 3: epoch %d end %d, want 1 2", e, end)
	}
}

// Every batch a leader appends carries the epoch the cache says its offset
// belongs to, however produces and leadership changes interleave; and a
// replica that does not lead appends nothing.
func TestEpochStampsMatchEpochCache(t *testing.T) {
	p := openReplica(t)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_, _ = p.Append(plain("v"))
		}
	}()
	for epoch := int32(1); epoch <= 60; epoch++ {
		leader := int32(1)
		if epoch%3 == 0 {
			leader = 2 // a follower's turn: nothing may be appended
		}
		if err := p.SetRole(Role{Self: 1, LeaderID: leader, Epoch: epoch, Replicas: []int32{1, 2}, ISR: []int32{1}, MinISR: 1}); err != nil {
			t.Fatal(err)
		}
		if leader == 1 {
			end := p.LogEndOffset()
			testutil.Eventually(t, "an append in the new epoch", func() bool { return p.LogEndOffset() > end })
		}
	}
	close(stop)
	wg.Wait()
	reg, err := p.Log().Read(0, 1<<30, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := reg.Bytes()
	reg.Release()
	it := batch.NewIter(b)
	n := 0
	for it.Next() {
		h := it.Header()
		want := epochAt(p, h.BaseOffset)
		if h.PartitionLeaderEpoch != want {
			t.Fatalf("batch at %d stamped with epoch %d; the epoch cache puts it in epoch %d", h.BaseOffset, h.PartitionLeaderEpoch, want)
		}
		if want%3 == 0 {
			t.Fatalf("batch at %d appended in epoch %d, when this replica followed", h.BaseOffset, want)
		}
		n++
	}
	if n == 0 {
		t.Fatal("nothing appended")
	}
}
