package partition

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// A clean close leaves a producer snapshot that the next open uses instead
// of replaying the log, only while the log still ends where the snapshot
// says; a log changed since, or a torn snapshot, is replayed.
func TestProducerSnapshot(t *testing.T) {
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	cfg := Config{Topic: "t", Dir: t.TempDir(), Log: lc, SyncAcks: true, Logger: lc.Logger}
	path := filepath.Join(cfg.Dir, snapshotFileName)
	open := func() *Partition {
		t.Helper()
		p, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	closeP := func(p *Partition) {
		t.Helper()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// plant rewrites the snapshot with a producer the log never saw: if
	// the next open knows it, the snapshot was used.
	plant := func() {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tail, producers, err := decodeSnapshot(b)
		if err != nil {
			t.Fatal(err)
		}
		state := map[int64]*producerState{99: {epoch: 3}}
		for _, sp := range producers {
			ps := &producerState{epoch: sp.epoch}
			for _, sb := range sp.batches {
				ps.batches = append(ps.batches, producerBatch{firstSeq: sb.firstSeq, lastSeq: sb.lastSeq,
					res: storage.AppendResult{BaseOffset: sb.base, LastOffset: sb.last, MaxTimestamp: sb.maxTimestamp}})
			}
			state[sp.id] = ps
		}
		if err := os.WriteFile(path, encodeSnapshot(tail, state), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p := open()
	leadAlone(t, p)
	ctx := context.Background()
	for i, v := range []string{"a", "b"} {
		if _, err := p.Produce(ctx, idem(int32(i), v), -1); err != nil {
			t.Fatal(err)
		}
	}
	closeP(p)
	plant()

	p = open()
	if p.producers[99] == nil {
		t.Fatal("the snapshot of a clean close was not used")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("snapshot still there after open: %v", err)
	}
	leadAlone(t, p)
	if r, err := p.Produce(ctx, idem(1, "b"), -1); err != nil || !r.Duplicate || r.BaseOffset != 1 {
		t.Fatalf("retry of sequence 1 after a clean restart: %+v %v, want the duplicate at 1", r, err)
	}
	if _, err := p.Produce(ctx, idem(3, "d"), -1); err == nil {
		t.Fatal("sequence 3 accepted after 1: producer state lost")
	}
	closeP(p)

	// The log grows behind the snapshot's back (as a crash after more
	// appends leaves it): the snapshot no longer matches and the log is
	// replayed, which knows producer 8 and not the planted 99.
	plant()
	l, err := storage.Open(cfg.Dir, lc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte("x")}, Timestamp: 1_700_000_000_000, ProducerID: 8}), 1); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p = open()
	if p.producers[99] != nil || p.producers[8] == nil || p.producers[7] == nil {
		t.Fatalf("after the log changed: producers %v, want 7 and 8 replayed, not 99", p.producers)
	}
	closeP(p)

	// A torn snapshot fails its checksum: replayed.
	plant()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	p = open()
	defer p.Close()
	if p.producers[99] != nil || p.producers[7] == nil {
		t.Fatalf("after a torn snapshot: producers %v, want 7 replayed, not 99", p.producers)
	}
}

// Snapshots decode to what was encoded; any cut or flipped byte is
// refused, never half-read.
func TestProducerSnapshotEncoding(t *testing.T) {
	tail := logTail{end: 42, base: 40, crc: 0xdeadbeef}
	state := map[int64]*producerState{
		7: {epoch: 2, batches: []producerBatch{{firstSeq: 0, lastSeq: 1, res: storage.AppendResult{BaseOffset: 38, LastOffset: 39, MaxTimestamp: 5}},
			{firstSeq: 2, lastSeq: 3, res: storage.AppendResult{BaseOffset: 40, LastOffset: 41, MaxTimestamp: 6}}}},
		9: {epoch: 0},
	}
	b := encodeSnapshot(tail, state)
	gotTail, producers, err := decodeSnapshot(b)
	if err != nil || gotTail != tail || len(producers) != 2 {
		t.Fatalf("decode: %+v %v %v", gotTail, producers, err)
	}
	for _, sp := range producers {
		want := state[sp.id]
		if want == nil || sp.epoch != want.epoch || len(sp.batches) != len(want.batches) {
			t.Fatalf("producer %+v, want %+v", sp, want)
		}
		for i, sb := range sp.batches {
			w := want.batches[i]
			if sb.firstSeq != w.firstSeq || sb.lastSeq != w.lastSeq || sb.base != w.res.BaseOffset || sb.last != w.res.LastOffset || sb.maxTimestamp != w.res.MaxTimestamp {
				t.Fatalf("batch %+v, want %+v", sb, w)
			}
		}
	}
	for n := range len(b) {
		if _, _, err := decodeSnapshot(b[:n]); err == nil {
			t.Fatalf("a snapshot cut to %d of %d bytes decoded", n, len(b))
		}
		c := append([]byte(nil), b...)
		c[n] ^= 0x01
		if _, _, err := decodeSnapshot(c); err == nil {
			t.Fatalf("a snapshot with byte %d flipped decoded", n)
		}
	}
}
