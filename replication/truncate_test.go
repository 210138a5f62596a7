package replication

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

func open(t *testing.T) *partition.Partition {
	t.Helper()
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	p, err := partition.Open(partition.Config{Topic: "t", Dir: t.TempDir(), Log: lc, Logger: lc.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// lead makes p lead epoch (with an ISR whose other member never fetched,
// so its high watermark holds still) and appends n records.
func lead(t *testing.T, p *partition.Partition, self, epoch int32, n int) {
	t.Helper()
	if err := p.SetRole(partition.Role{Self: self, LeaderID: self, Epoch: epoch, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := p.Append(batchtest.Values(1_700_000_000_000, fmt.Appendf(nil, "%d-e%d-%d", self, epoch, i))); err != nil {
			t.Fatal(err)
		}
	}
}

func bytesOf(t *testing.T, p *partition.Partition, from int64) []byte {
	t.Helper()
	reg, err := p.Log().Read(from, 1<<30, -1)
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

// KIP-279's case: F led epoch 1 (offsets 0..4) and then, cut off, epoch 3
// (5..6); L copied 0..3 of epoch 1, then led epochs 2 (4..7) and 4
// (8..9). F asks about epoch 3; L answers epoch 2, which F lacks: F cuts
// to its own end of epoch 1 (5) and must ask again, about epoch 1, whose
// end on L is 4 — one round would leave F's offset 4 where L has another
// record.
func TestTruncationWalksBackToCommonEpoch(t *testing.T) {
	l, f := open(t), open(t)
	lead(t, f, 2, 1, 5)
	if err := l.SetRole(partition.Role{Self: 1, LeaderID: 2, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}); err != nil {
		t.Fatal(err)
	}
	reg, _ := f.Log().Read(0, 1<<20, 4)
	first4, _ := reg.Bytes()
	reg.Release()
	if _, err := l.AppendReplicated(first4, 0, 1); err != nil || l.LogEndOffset() != 4 {
		t.Fatalf("copy of 0..3: %v, end %d", err, l.LogEndOffset())
	}
	lead(t, l, 1, 2, 4)
	lead(t, f, 2, 3, 2)
	lead(t, l, 1, 4, 2)
	if err := f.SetRole(partition.Role{Self: 2, LeaderID: 1, Epoch: 4, Replicas: []int32{1, 2}, ISR: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	rounds := 0
	ask := func(_ context.Context, epoch int32) (int32, int64, error) {
		rounds++
		e, end := l.EndOffsetForEpoch(epoch)
		return e, end, nil
	}
	if err := truncateToCommon(context.Background(), f, ask, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if f.LogEndOffset() != 4 || rounds != 2 {
		t.Fatalf("follower cut to %d after %d rounds, want 4 after 2", f.LogEndOffset(), rounds)
	}
	if _, err := f.AppendReplicated(bytesOf(t, l, 4), 4, 4); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bytesOf(t, f, 0), bytesOf(t, l, 0)) {
		t.Fatal("after truncation and catch-up the follower's log differs from the leader's")
	}
}
