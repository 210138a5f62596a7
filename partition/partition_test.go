package partition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

func idem(seq int32, v string) []byte {
	return batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte(v)}, Timestamp: 1_700_000_000_000, ProducerID: 7, ProducerEpoch: 0, BaseSequence: seq})
}

// After a failed fsync cuts the log back, producer state follows the log:
// the retry of the cut batch is written again (not answered as a
// duplicate of something gone), and no sequence is accepted over a hole.
func TestProducerStateFollowsTruncation(t *testing.T) {
	ffs := storage.NewFaultFS(nil)
	lc := storage.DefaultConfig()
	lc.FS = ffs
	p, err := Open(Config{Topic: "t", Dir: t.TempDir(), Log: lc, SyncAcks: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	leadAlone(t, p)
	ctx := context.Background()
	if _, err := p.Produce(ctx, idem(0, "a"), -1); err != nil {
		t.Fatal(err)
	}
	ffs.FailNextSync(syscall.EIO)
	if _, err := p.Produce(ctx, idem(1, "b"), -1); !errors.Is(err, storage.ErrNotDurable) {
		t.Fatalf("produce whose fsync failed: %v, want ErrNotDurable", err)
	}
	if p.LogEndOffset() != 1 {
		t.Fatalf("log end %d after the cut, want 1", p.LogEndOffset())
	}
	if _, err := p.Produce(ctx, idem(2, "c"), -1); err == nil {
		t.Fatal("sequence 2 accepted over the hole left by sequence 1")
	}
	r, err := p.Produce(ctx, idem(1, "b"), -1)
	if err != nil || r.Duplicate || r.BaseOffset != 1 {
		t.Fatalf("retry of sequence 1: %+v %v, want written at 1", r, err)
	}
	if r, err := p.Produce(ctx, idem(2, "c"), -1); err != nil || r.BaseOffset != 2 {
		t.Fatalf("sequence 2: %+v %v", r, err)
	}
}

func openReplica(t *testing.T) *Partition {
	t.Helper()
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	p, err := Open(Config{Topic: "t", Dir: t.TempDir(), Log: lc, Logger: lc.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// leadAlone makes p (broker 1) the leader of a partition with one replica,
// as a single-broker cluster has it: epoch 1, ISR {1}, min.insync.replicas 1.
func leadAlone(t *testing.T, p *Partition) {
	t.Helper()
	if err := p.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1}, ISR: []int32{1}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
}

func plain(v string) []byte {
	return batchtest.Values(1_700_000_000_000, []byte(v))
}

// copyFrom replicates everything from offset on, as a follower's fetch does.
func copyFrom(t *testing.T, from, to *Partition, offset int64) {
	t.Helper()
	reg, err := from.Log().Read(offset, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := reg.Bytes()
	reg.Release()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 {
		if _, err := to.AppendReplicated(b, to.LogEndOffset(), to.LeaderEpoch()); err != nil {
			t.Fatal(err)
		}
	}
}

// divergence truncates a follower where its log left the leader's, found
// by leader epoch (KIP-101), then copies the leader's log.
func divergence(t *testing.T, leader, follower *Partition) {
	t.Helper()
	epoch, end := leader.EndOffsetForEpoch(follower.LatestEpoch())
	if epoch < follower.LatestEpoch() {
		_, ownEnd := follower.EndOffsetForEpoch(epoch)
		end = min(end, ownEnd)
	}
	if err := follower.TruncateTo(min(end, follower.LogEndOffset())); err != nil {
		t.Fatal(err)
	}
	copyFrom(t, leader, follower, follower.LogEndOffset())
}

func logBytes(t *testing.T, p *Partition) []byte {
	t.Helper()
	reg, err := p.Log().Read(0, 1<<30, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Release()
	b, err := reg.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// KIP-101's lost write: A leads epoch 0 and writes 0..4; B has copied 0..2
// when A dies. B leads epoch 1 and writes its own 3..5. A returns as a
// follower: it must drop its 3..4 (never committed) and take B's, ending
// byte-identical to B — truncating to its high watermark instead would keep
// A's tail or lose B's.
func TestFollowerTruncatesAtDivergence(t *testing.T) {
	a, b := openReplica(t), openReplica(t)
	if err := a.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := a.Append(plain(fmt.Sprintf("a%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	reg, _ := a.Log().Read(0, 1<<20, 3) // B copied offsets 0..2
	first3, _ := reg.Bytes()
	reg.Release()
	if err := b.SetRole(Role{Self: 2, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AppendReplicated(first3, 0, 1); err != nil {
		t.Fatal(err)
	}
	if b.LogEndOffset() != 3 || b.LatestEpoch() != 1 {
		t.Fatalf("follower end %d epoch %d", b.LogEndOffset(), b.LatestEpoch())
	}
	// A dies; B leads epoch 2.
	if err := b.SetRole(Role{Self: 2, LeaderID: 2, Epoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := b.Append(plain(fmt.Sprintf("b%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if e, end := b.EndOffsetForEpoch(1); e != 1 || end != 3 {
		t.Fatalf("leader's end of epoch 1: %d %d, want 1 3", e, end)
	}
	// A returns and follows B in epoch 2.
	if err := a.SetRole(Role{Self: 1, LeaderID: 2, Epoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}}); err != nil {
		t.Fatal(err)
	}
	divergence(t, b, a)
	if a.LogEndOffset() != 6 || !bytes.Equal(logBytes(t, a), logBytes(t, b)) {
		t.Fatalf("after truncation and catch-up the logs differ (A ends at %d)", a.LogEndOffset())
	}
	if a.LatestEpoch() != 2 {
		t.Fatalf("follower's latest epoch %d, want 2", a.LatestEpoch())
	}
	// The epoch cache survives a reopen.
	dir := a.cfg.Dir
	a.Close()
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	a2, err := Open(Config{Topic: "t", Dir: dir, Log: lc, Logger: lc.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer a2.Close()
	if e, end := a2.EndOffsetForEpoch(1); e != 1 || end != 3 {
		t.Fatalf("after reopen, end of epoch 1: %d %d", e, end)
	}
}

func TestHighWatermarkCheckpoint(t *testing.T) {
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	p, err := Open(Config{Topic: "t", Dir: dir, Log: lc, Logger: lc.Logger})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Append(plain("x")); err != nil {
			t.Fatal(err)
		}
	}
	p.ReplicaFetched(2, 2, time.Now()) // the follower has 0..1: HW 2
	if hw := p.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d, want 2", hw)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = Open(Config{Topic: "t", Dir: dir, Log: lc, Logger: lc.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if hw := p.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark after reopen %d, want 2", hw)
	}
}

// A single-broker cluster is a leader alone in its ISR: its own copy
// commits a batch, so acks=all is answered once the batch is in its log
// (durable, with SyncAcks) and the high watermark has passed it, with no
// follower to wait for. acks=1 leaves the batch readable too.
func TestSoleLeaderAcknowledgesAndAdvancesHighWatermark(t *testing.T) {
	for _, syncAcks := range []bool{true, false} {
		for _, acks := range []int16{-1, 1} {
			t.Run(fmt.Sprintf("SyncAcks=%v/acks=%d", syncAcks, acks), func(t *testing.T) {
				lc := storage.DefaultConfig()
				lc.Logger = slog.New(slog.DiscardHandler)
				p, err := Open(Config{Topic: "t", Dir: t.TempDir(), Log: lc, SyncAcks: syncAcks, Logger: lc.Logger})
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				leadAlone(t, p)
				for i := range int64(3) {
					a, err := p.Append(plain(fmt.Sprint(i)))
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					r, err := p.WaitAck(ctx, a, acks)
					cancel()
					if err != nil {
						t.Fatalf("batch %d: WaitAck: %v", i, err)
					}
					if r.BaseOffset != i {
						t.Fatalf("batch %d acknowledged at offset %d", i, r.BaseOffset)
					}
					if syncAcks && p.DurableOffset() <= i {
						t.Fatalf("batch %d acknowledged at durable offset %d", i, p.DurableOffset())
					}
					if hw := p.HighWatermark(); hw != i+1 {
						t.Fatalf("high watermark %d after batch %d was acknowledged, want %d", hw, i, i+1)
					}
				}
			})
		}
	}
}

// A single-broker cluster restarted after a kill that left partition.state
// behind its log has its high watermark back at the log end as soon as it
// leads again: everything its own log holds is committed.
func TestSoleLeaderHighWatermarkAfterRestart(t *testing.T) {
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	cfg := Config{Topic: "t", Dir: t.TempDir(), Log: lc, SyncAcks: true, Logger: lc.Logger}
	p, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	leadAlone(t, p)
	for i := range 3 {
		if _, err := p.Produce(context.Background(), plain(fmt.Sprint(i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := saveHighWatermark(cfg.Dir, 1); err != nil { // the last checkpoint before the kill
		t.Fatal(err)
	}
	p, err = Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("high watermark %d on open, want the checkpointed 1", hw)
	}
	leadAlone(t, p)
	if hw := p.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark %d once leading alone again, want the log end 3", hw)
	}
}
