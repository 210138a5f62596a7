package lossyfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// The storage tests run the real log in helper processes: it memory-maps
// its indexes, which the process serving the mount must not do.

const (
	recordsPerBatch = 4
	leaderEpoch     = 3
	// Batches written in three runs: closed cleanly, fsynced, neither.
	closedBatches, flushedBatches, unflushedBatches = 40, 5, 5
)

func storageConfig() storage.Config {
	cfg := storage.DefaultConfig()
	cfg.SegmentBytes = 16 << 10 // several segments, and index entries
	cfg.IndexIntervalBytes = 256
	cfg.MaxIndexBytes = 64 << 10
	cfg.RetentionMs = -1 // the timestamps are old
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	return cfg
}

// testBatch is batch i as stored: its offsets and epoch assigned.
func testBatch(i int) []byte {
	values := make([][]byte, recordsPerBatch)
	for j := range values {
		values[j] = fmt.Appendf(nil, "batch %d record %d %s", i, j, bytes.Repeat([]byte{'v'}, 180))
	}
	b := batchtest.Values(1_700_000_000_000+int64(i), values...)
	batch.SetBaseOffset(b, int64(i*recordsPerBatch))
	batch.SetPartitionLeaderEpoch(b, leaderEpoch)
	return b
}

func appendBatches(l *storage.Log, from, to int) error {
	for i := from; i < to; i++ {
		if _, err := l.Append(testBatch(i), leaderEpoch); err != nil {
			return fmt.Errorf("append batch %d: %w", i, err)
		}
	}
	return nil
}

// storageWriteJob writes closedBatches and closes the log, reopens it,
// appends flushedBatches and fsyncs them, then appends unflushedBatches and
// waits to be killed. It prints the durable log end offset. No segment
// rolls after the reopen: a roll asks for a flush, which could make the
// unflushed batches durable behind the test's back.
func storageWriteJob(dir string) (string, bool, error) {
	dir = filepath.Join(dir, "topic-0")
	l, err := storage.Open(dir, storageConfig())
	if err != nil {
		return "", false, err
	}
	if err := appendBatches(l, 0, closedBatches); err != nil {
		return "", false, err
	}
	if err := l.Roll(); err != nil {
		return "", false, err
	}
	if err := l.Close(); err != nil {
		return "", false, err
	}
	if l, err = storage.Open(dir, storageConfig()); err != nil {
		return "", false, err
	}
	segments := l.NumSegments()
	if err := appendBatches(l, closedBatches, closedBatches+flushedBatches); err != nil {
		return "", false, err
	}
	if err := l.Flush(context.Background()); err != nil {
		return "", false, err
	}
	durable := l.LogEndOffset()
	if err := appendBatches(l, closedBatches+flushedBatches, closedBatches+flushedBatches+unflushedBatches); err != nil {
		return "", false, err
	}
	if n := l.NumSegments(); n != segments {
		return "", false, fmt.Errorf("the log rolled from %d to %d segments after the reopen", segments, n)
	}
	return fmt.Sprint(durable), true, nil
}

// storageCheckJob opens the log, checks every batch in it and prints its
// log end offset.
func storageCheckJob(dir string) (string, bool, error) {
	l, err := storage.Open(filepath.Join(dir, "topic-0"), storageConfig())
	if err != nil {
		return "", false, err
	}
	if start := l.LogStartOffset(); start != 0 {
		return "", false, fmt.Errorf("log starts at %d", start)
	}
	i := 0
	for off := int64(0); off < l.LogEndOffset(); {
		r, err := l.Read(off, 1<<20, -1)
		if err != nil {
			return "", false, fmt.Errorf("read at %d: %w", off, err)
		}
		b, err := r.Bytes()
		r.Release()
		if err != nil {
			return "", false, err
		}
		if len(b) == 0 {
			return "", false, fmt.Errorf("nothing to read at offset %d, log end offset %d", off, l.LogEndOffset())
		}
		for it := batch.NewIter(b); it.Next(); i++ {
			if !bytes.Equal(it.Batch(), testBatch(i)) {
				return "", false, fmt.Errorf("batch %d at offset %d differs from what was appended", i, it.Header().BaseOffset)
			}
			off = it.Header().LastOffset() + 1
		}
	}
	if want := l.LogEndOffset() / recordsPerBatch; int64(i) != want {
		return "", false, fmt.Errorf("read %d batches, log end offset %d", i, l.LogEndOffset())
	}
	if err := l.Close(); err != nil && !errors.Is(err, storage.ErrClosed) {
		return "", false, err
	}
	return fmt.Sprint(l.LogEndOffset()), false, nil
}

// TestStorageSurvivesPowerLoss runs the real log on the mount: what it
// fsynced is all there after a power loss, intact, and nothing more.
func TestStorageSurvivesPowerLoss(t *testing.T) {
	f, _, mnt := mountForTest(t)
	cmd, durable := startHelper(t, "storage-write", mnt)
	if f.Unsynced() == 0 {
		t.Fatal("the unflushed appends left nothing unsynced")
	}
	killHelper(t, cmd)
	powerLoss(t, f)
	if leo := runHelperJob(t, "storage-check", mnt); leo != durable {
		t.Fatalf("log end offset %s after the power loss, want the durable %s", leo, durable)
	}
	if want := fmt.Sprint((closedBatches + flushedBatches) * recordsPerBatch); durable != want {
		t.Fatalf("the writer made %s durable, want %s", durable, want)
	}
}
