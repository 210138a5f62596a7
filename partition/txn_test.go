package partition

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"testing"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

const attrTransactional = 0x10

// txnBatch is a transactional producer's batch.
func txnBatch(pid int64, seq int32, v string) []byte {
	return batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte(v)}, Timestamp: 1_700_000_000_000, ProducerID: pid,
		BaseSequence: seq, Attributes: attrTransactional})
}

// leaderAndFollower is broker 1 leading a two-replica partition and
// broker 2 following it; reopen closes the follower and opens it again on
// its data (no producer snapshot is kept with transaction state).
func leaderAndFollower(t *testing.T) (leader, follower *Partition, reopen func() *Partition) {
	t.Helper()
	dir := t.TempDir()
	lc := storage.DefaultConfig()
	lc.Logger = slog.New(slog.DiscardHandler)
	leader = openReplica(t)
	if err := leader.SetRole(Role{Self: 1, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	open := func() *Partition {
		p, err := Open(Config{Topic: "t", Dir: dir, Log: lc, Logger: lc.Logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	follower = open()
	if err := follower.SetRole(Role{Self: 2, LeaderID: 1, Epoch: 1, Replicas: []int32{1, 2}, ISR: []int32{1}}); err != nil {
		t.Fatal(err)
	}
	return leader, follower, func() *Partition {
		if err := follower.Close(); err != nil {
			t.Fatal(err)
		}
		follower = open()
		return follower
	}
}

// copyAll replicates the leader's log to the follower's end, segment by
// segment as a follower's fetches do (markers stamped now roll a segment
// after the tests' 2023 batches).
func copyAll(t *testing.T, leader, follower *Partition) {
	t.Helper()
	for follower.LogEndOffset() < leader.LogEndOffset() {
		copyFrom(t, leader, follower, follower.LogEndOffset())
	}
}

// lso writes pending data durably and returns the last stable offset.
func lso(t *testing.T, p *Partition) int64 {
	t.Helper()
	if err := p.Log().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.updateHighWatermark()
	return p.LastStableOffset()
}

// The last stable offset stops at the oldest open transaction and moves
// when its marker is written; an abort is remembered with its range, a
// commit is not; a marker from an older epoch is refused; plain records
// never hold the LSO back.
func TestTransactionsOnTheLeader(t *testing.T) {
	p := openReplica(t)
	leadAlone(t, p)
	must := func(_ Appended, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.Append(plain("a")))            // 0
	must(p.Append(txnBatch(10, 0, "x1"))) // 1: producer 10 opens
	must(p.Append(plain("b")))            // 2
	must(p.Append(txnBatch(11, 0, "y1"))) // 3: producer 11 opens
	must(p.Append(txnBatch(10, 1, "x2"))) // 4
	if got := lso(t, p); got != 1 {
		t.Fatalf("LSO %d with producer 10 open from 1, want 1", got)
	}
	if n := p.OpenTxns(); n != 2 {
		t.Fatalf("%d open transactions, want 2", n)
	}
	must(p.WriteMarker(10, 0, false, 0)) // 5: abort 10
	if got := lso(t, p); got != 3 {
		t.Fatalf("LSO %d after aborting 10, want 3 (11 still open)", got)
	}
	must(p.WriteMarker(11, 0, true, 0)) // 6: commit 11
	if got, hw := lso(t, p), p.HighWatermark(); got != hw || hw != 7 {
		t.Fatalf("LSO %d, high watermark %d after every transaction ended, want both 7", got, hw)
	}
	want := []AbortedTxn{{ProducerID: 10, FirstOffset: 1, LastOffset: 5}}
	if got := p.AbortedTxns(0, 7); !slices.Equal(got, want) {
		t.Fatalf("aborted %v, want %v", got, want)
	}
	if got := p.AbortedTxns(6, 7); len(got) != 0 {
		t.Fatalf("aborted in [6,7): %v, want none", got)
	}
	// Producer 10 moved to epoch 1 (fenced by the coordinator): a marker
	// of epoch 0 is refused.
	must(p.WriteMarker(10, 1, false, 1))
	if _, err := p.WriteMarker(10, 0, true, 1); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("a marker of an older producer epoch: %v, want ErrInvalidProducerEpoch", err)
	}
	// A marker is a control batch: a producer may not send one itself.
	if _, err := p.Append(batch.BuildMarker(12, 0, true, 0, 1)); !errors.Is(err, batch.ErrControlBatch) {
		t.Fatalf("a producer's control batch: %v, want ErrControlBatch", err)
	}
}

// A follower derives the same transaction state from the batches it
// replicates, and a replica reopened without a producer snapshot rebuilds
// it from the log (open transactions and aborted ranges alike).
func TestTransactionsReplicatedAndRebuilt(t *testing.T) {
	leader, f, reopen := leaderAndFollower(t)
	for _, b := range [][]byte{txnBatch(20, 0, "a"), txnBatch(21, 0, "b"), txnBatch(20, 1, "c")} {
		if _, err := leader.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.WriteMarker(20, 0, false, 0); err != nil { // offset 3
		t.Fatal(err)
	}
	if _, err := leader.Append(txnBatch(22, 0, "d")); err != nil { // 4: 22 opens
		t.Fatal(err)
	}
	if _, err := leader.WriteMarker(21, 0, true, 0); err != nil { // 5
		t.Fatal(err)
	}
	copyAll(t, leader, f)
	check := func(who string, p *Partition) {
		t.Helper()
		want := []AbortedTxn{{ProducerID: 20, FirstOffset: 0, LastOffset: 3}}
		if got := p.AbortedTxns(0, 100); !slices.Equal(got, want) {
			t.Errorf("%s: aborted %v, want %v", who, got, want)
		}
		if n := p.OpenTxns(); n != 1 || p.firstOpen.Load() != 4 {
			t.Errorf("%s: %d open, oldest from %d; want producer 22 open from 4", who, n, p.firstOpen.Load())
		}
	}
	check("follower", f)
	f = reopen()
	check("reopened", f)
}

// Compaction of a transactional topic keeps each key's latest committed
// value: an aborted transaction's later value of the key is removed and
// does not supersede the committed one; control batches stay.
func TestCompactionDropsAbortedRecords(t *testing.T) {
	lc := storage.DefaultConfig()
	lc.Logger, lc.Compact = slog.New(slog.DiscardHandler), true
	p, err := Open(Config{Topic: "t", Dir: t.TempDir(), Log: lc, SyncAcks: true, Logger: lc.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	leadAlone(t, p)
	ctx := context.Background()
	keyed := func(pid int64, seq int32, k, v string) []byte {
		return batchtest.Build(batchtest.Spec{Keys: [][]byte{[]byte(k)}, Values: [][]byte{[]byte(v)}, Timestamp: 1_700_000_000_000,
			ProducerID: pid, BaseSequence: seq, Attributes: attrTransactional})
	}
	if _, err := p.Produce(ctx, keyed(30, 0, "k", "committed"), -1); err != nil {
		t.Fatal(err)
	}
	if a, err := p.WriteMarker(30, 0, true, 0); err != nil {
		t.Fatal(err)
	} else if _, err := p.WaitAck(ctx, a, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(ctx, keyed(31, 0, "k", "aborted"), -1); err != nil {
		t.Fatal(err)
	}
	if a, err := p.WriteMarker(31, 0, false, 0); err != nil {
		t.Fatal(err)
	} else if _, err := p.WaitAck(ctx, a, -1); err != nil {
		t.Fatal(err)
	}
	if err := p.Log().Roll(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(ctx, plain("after"), -1); err != nil {
		t.Fatal(err)
	}
	st, err := p.Compact()
	if err != nil {
		t.Fatal(err)
	}
	if st.RecordsRemoved != 1 {
		t.Fatalf("compaction removed %d records, want the aborted one", st.RecordsRemoved)
	}
	var values []string
	controls := 0
	for off := int64(0); off < p.LogEndOffset(); { // segment by segment
		reg, err := p.Log().Read(off, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := reg.Bytes()
		reg.Release()
		it := batch.NewIter(b)
		for it.Next() {
			off = it.Header().LastOffset() + 1
			if it.Header().Control() {
				controls++
				continue
			}
			recs, err := batch.Records(it.Batch())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				values = append(values, string(r.Value))
			}
		}
	}
	if !slices.Equal(values, []string{"committed", "after"}) || controls != 2 {
		t.Fatalf("after compaction: values %v, %d markers; want [committed after] and both markers", values, controls)
	}
}

// Review findings, each a test that failed before its fix.

// A marker's producer epoch fences the producer on every replica, not
// only on the leader that wrote it: after a failover, and after a reopen
// (no producer snapshot with transaction state), a zombie batch of the
// old epoch is refused instead of opening a transaction nothing ends.
func TestMarkerEpochFencesEverywhere(t *testing.T) {
	leader, f, reopen := leaderAndFollower(t)
	if _, err := leader.Append(txnBatch(40, 0, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.WriteMarker(40, 1, false, 0); err != nil { // timed out: aborted with the epoch bumped
		t.Fatal(err)
	}
	copyAll(t, leader, f)
	if err := f.SetRole(Role{Self: 2, LeaderID: 2, Epoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(txnBatch(40, 1, "zombie")); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("the new leader took a batch of the fenced epoch: %v", err)
	}
	f = reopen()
	if err := f.SetRole(Role{Self: 2, LeaderID: 2, Epoch: 3, Replicas: []int32{2}, ISR: []int32{2}, MinISR: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(txnBatch(40, 1, "zombie")); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("after a reopen the fenced epoch was taken: %v", err)
	}
	if n := f.OpenTxns(); n != 0 {
		t.Fatalf("%d transactions open after the refusals", n)
	}
}

// A reset log (the leader's starts above this replica's end) holds no
// transaction: the LSO follows the high watermark again.
func TestResetToClearsTransactions(t *testing.T) {
	p := openReplica(t)
	leadAlone(t, p)
	if _, err := p.Append(txnBatch(41, 0, "open")); err != nil {
		t.Fatal(err)
	}
	if err := p.SetRole(Role{Self: 1, LeaderID: 2, Epoch: 2, Replicas: []int32{1, 2}, ISR: []int32{2}}); err != nil {
		t.Fatal(err)
	}
	if err := p.ResetTo(100); err != nil {
		t.Fatal(err)
	}
	if lso := p.LastStableOffset(); lso != 100 || p.OpenTxns() != 0 {
		t.Fatalf("after ResetTo(100): LSO %d, %d open", lso, p.OpenTxns())
	}
}

// A transactional batch without a producer id is refused: it would open a
// transaction no coordinator could end.
func TestTransactionalBatchNeedsProducerID(t *testing.T) {
	p := openReplica(t)
	leadAlone(t, p)
	b := batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte("x")}, Timestamp: 1, ProducerID: -1, BaseSequence: -1, Attributes: attrTransactional})
	if _, err := p.Append(b); !errors.Is(err, batch.ErrInvalidSequence) {
		t.Fatalf("a transactional batch of producer -1: %v, want ErrInvalidSequence", err)
	}
}

// A marker from an older coordinator epoch than one already seen for the
// producer is refused: a deposed coordinator's late retry cannot end the
// producer's next transaction with the old decision.
func TestStaleCoordinatorMarkerRefused(t *testing.T) {
	p := openReplica(t)
	leadAlone(t, p)
	if _, err := p.Append(txnBatch(42, 0, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteMarker(42, 0, true, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(txnBatch(42, 1, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WriteMarker(42, 0, false, 4); !errors.Is(err, ErrCoordinatorFenced) {
		t.Fatalf("a marker of coordinator epoch 4 after 5: %v, want ErrCoordinatorFenced", err)
	}
	if p.OpenTxns() != 1 {
		t.Fatal("the stale marker ended the open transaction")
	}
}

// The LSO never passes a transaction's first batch, not even while it is
// being appended (a lone leader's high watermark moves at the append).
func TestLSONeverPassesAnOpeningTransaction(t *testing.T) {
	for run := range 60 {
		lc := storage.DefaultConfig()
		lc.Logger = slog.New(slog.DiscardHandler)
		p, err := Open(Config{Topic: "t", Dir: t.TempDir(), Log: lc, Logger: lc.Logger}) // SyncAcks off
		if err != nil {
			t.Fatal(err)
		}
		leadAlone(t, p)
		stop := make(chan struct{})
		seen := make(chan int64, 1)
		go func() {
			var maxLSO int64
			for {
				select {
				case <-stop:
					seen <- maxLSO
					return
				default:
					maxLSO = max(maxLSO, p.LastStableOffset())
				}
			}
		}()
		if _, err := p.Append(txnBatch(43, 0, "open")); err != nil {
			t.Fatal(err)
		}
		close(stop)
		if got := <-seen; got > 0 {
			t.Fatalf("run %d: LSO %d seen with a transaction open at 0", run, got)
		}
		p.Close()
	}
}
