package partition

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"testing"

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
