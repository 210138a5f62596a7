package broker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// txnRecords is a transactional producer's batch of values.
func txnRecords(pid int64, seq int32, values ...string) []byte {
	var vs [][]byte
	for _, v := range values {
		vs = append(vs, []byte(v))
	}
	return batchtest.Build(batchtest.Spec{Values: vs, Timestamp: time.Now().UnixMilli(), ProducerID: pid, BaseSequence: seq, Attributes: 0x10})
}

// readValues consumes topic's partition 0 from the start with the client's
// isolation level until it has want records or the deadline passes.
func readValues(t *testing.T, c *brokertest.Cluster, topic string, committed bool, want int) []string {
	t.Helper()
	opts := []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}})}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl := c.Client(opts...)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var out []string
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
	}
	return out
}

// Transactions as a partition serves them to real consumers: a
// read_committed consumer (franz-go) stops at the oldest open transaction
// while a read_uncommitted one reads on; after the coordinator's abort
// marker (WriteTxnMarkers, replicated with acks=all) the aborted records
// are dropped by the read_committed consumer and what follows is read;
// after a commit marker the committed records are read. The followers
// hold the same markers. A transactional batch without a transactional
// id is refused (INVALID_TXN_STATE): no coordinator would ever end it.
func TestReadCommittedAndMarkers(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 1, 3, nil, "tx"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	leaderID, _ := c.PartitionInfo("tx", 0)
	leader := broker.Replica(c.Brokers[c.Index(leaderID)], "tx", 0)
	appendAll := func(bs ...[]byte) {
		t.Helper()
		for _, b := range bs {
			if _, err := leader.Produce(ctxT(t), b, -1); err != nil {
				t.Fatal(err)
			}
		}
	}
	produceValues(t, c.Client(), "tx", []string{"plain-1"})
	appendAll(txnRecords(100, 0, "abort-1", "abort-2"), txnRecords(200, 0, "commit-1"))
	produceValues(t, c.Client(), "tx", []string{"plain-2"})
	appendAll(txnRecords(100, 2, "abort-3"))

	if got := readValues(t, c, "tx", true, 2); !slices.Equal(got, []string{"plain-1"}) {
		t.Fatalf("read_committed with two open transactions: %v, want [plain-1]", got)
	}
	all := []string{"plain-1", "abort-1", "abort-2", "commit-1", "plain-2", "abort-3"}
	if got := readValues(t, c, "tx", false, len(all)); !slices.Equal(got, all) {
		t.Fatalf("read_uncommitted: %v, want %v", got, all)
	}

	markers := func(pid int64, commit bool) {
		t.Helper()
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = pid, 0, commit
		m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "tx", Partitions: []int32{0}}}
		req.Markers = append(req.Markers, m)
		resp, err := req.RequestWith(ctxT(t), c.Client().Broker(int(leaderID)))
		if err != nil {
			t.Fatal(err)
		}
		if code := resp.Markers[0].Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("WriteTxnMarkers for %d: %v", pid, kerr.ErrorForCode(code))
		}
	}
	markers(100, false)
	// 200 is still open from offset 3: only what precedes it is stable.
	if got := readValues(t, c, "tx", true, 2); !slices.Equal(got, []string{"plain-1"}) {
		t.Fatalf("read_committed after the abort, 200 still open: %v, want [plain-1]", got)
	}
	markers(200, true)
	want := []string{"plain-1", "commit-1", "plain-2"}
	if got := readValues(t, c, "tx", true, len(want)+1); !slices.Equal(got, want) {
		t.Fatalf("read_committed after abort and commit: %v, want %v", got, want)
	}
	for i, b := range c.Brokers {
		p := broker.Replica(b, "tx", 0)
		if p.OpenTxns() != 0 || len(p.AbortedTxns(0, 1<<40)) != 1 {
			t.Errorf("broker %d: %d open, aborted %v; want none open and one aborted", i, p.OpenTxns(), p.AbortedTxns(0, 1<<40))
		}
	}

	// A transactional batch without its transactional id is refused.
	raw := kmsg.NewPtrProduceRequest()
	raw.Acks, raw.TimeoutMillis = -1, 5000
	raw.Topics = []kmsg.ProduceRequestTopic{{Topic: "tx", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: txnRecords(300, 0, "x")}}}}
	resp, err := raw.RequestWith(ctxT(t), c.Client().Broker(int(leaderID)))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTxnState.Code {
		t.Errorf("a transactional batch without a transactional id: code %d, want INVALID_TXN_STATE", code)
	}
}

// txnProducer is a franz-go transactional producer.
func txnProducer(t *testing.T, c *brokertest.Cluster, id string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return c.Client(append([]kgo.Opt{kgo.TransactionalID(id), kgo.RecordRetries(20)}, opts...)...)
}

// produceInTxn runs one transaction of values and ends it.
func produceInTxn(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) error {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctxT(t), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			return err
		}
	}
	return cl.EndTransaction(ctxT(t), kgo.TransactionEndTry(commit))
}

// franz-go's transactional producer against the coordinator: committed
// transactions are read by read_committed consumers, aborted ones only by
// read_uncommitted ones; a second producer with the same transactional id
// fences the first (its commit is refused), and the first's open
// transaction is aborted.
func TestTransactionalProducer(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 1, 3, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	p := txnProducer(t, c, "shop")
	if err := produceInTxn(t, p, "orders", true, "c1", "c2"); err != nil {
		t.Fatalf("committed transaction: %v", err)
	}
	if err := produceInTxn(t, p, "orders", false, "a1"); err != nil {
		t.Fatalf("aborted transaction: %v", err)
	}
	if err := produceInTxn(t, p, "orders", true, "c3"); err != nil {
		t.Fatalf("second committed transaction: %v", err)
	}
	if got, want := readValues(t, c, "orders", true, 4), []string{"c1", "c2", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed: %v, want %v", got, want)
	}
	if got, want := readValues(t, c, "orders", false, 5), []string{"c1", "c2", "a1", "c3"}; !slices.Equal(got, want) {
		t.Fatalf("read_uncommitted: %v, want %v", got, want)
	}

	// A zombie: the first instance opens a transaction, a second one
	// with the same id starts; the first's commit must fail and its
	// records never become visible.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "orders", Value: []byte("zombie")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p2 := txnProducer(t, c, "shop")
	if err := produceInTxn(t, p2, "orders", true, "c4"); err != nil {
		t.Fatalf("the new instance's transaction: %v", err)
	}
	if err := p.EndTransaction(ctxT(t), kgo.TryCommit); err == nil {
		t.Fatal("the fenced instance committed")
	}
	if got, want := readValues(t, c, "orders", true, 5), []string{"c1", "c2", "c3", "c4"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed after fencing: %v, want %v", got, want)
	}
}

// txnCoordinator is the index of the broker coordinating transactional id.
func txnCoordinator(t *testing.T, c *brokertest.Cluster, id string) int {
	t.Helper()
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorType, req.CoordinatorKey = 1, id
	var node int32 = -1
	testutil.Eventually(t, "a transaction coordinator", func() bool {
		resp, err := req.RequestWith(ctxT(t), c.Client())
		if err != nil || resp.ErrorCode != 0 {
			return false
		}
		node = resp.NodeID
		return true
	})
	return c.Index(node)
}

// A transaction its producer abandons is aborted once it outlives its
// timeout: read_committed consumers are held back only until then, and
// the abandoned records never become visible.
func TestHungTransactionAborted(t *testing.T) {
	c := brokertest.Start(t, 3, func(_ int, cfg *broker.Config) { cfg.TransactionAbortInterval = 100 * time.Millisecond })
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 1, 3, nil, "hung"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	p := txnProducer(t, c, "abandoned", kgo.TransactionTimeout(5*time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "hung", Value: []byte("lost")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produceValues(t, c.Client(), "hung", []string{"after"})
	if got := readValues(t, c, "hung", true, 1); len(got) != 0 {
		t.Fatalf("read_committed past an open transaction: %v", got)
	}
	// The coordinator aborts it (within the timeout plus a check); the
	// consumer then reads what follows, never the abandoned record.
	var got []string
	testutil.Eventually(t, "the hung transaction aborted", func() bool {
		got = readValues(t, c, "hung", true, 1)
		return len(got) == 1
	})
	if got[0] != "after" {
		t.Fatalf("read_committed after the abort: %v, want [after]", got)
	}
	// The producer was fenced by the abort: its commit is refused.
	if err := p.EndTransaction(ctxT(t), kgo.TryCommit); err == nil {
		t.Fatal("a producer whose transaction timed out committed it")
	}
}

// The coordinator dies with a transaction open: the broker that takes its
// __transaction_state partition over replays it, and the producer
// (franz-go finds the new coordinator) commits it.
func TestTransactionCoordinatorFailover(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 1, 3, nil, "moving"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	p := txnProducer(t, c, "survivor")
	if err := produceInTxn(t, p, "moving", true, "before"); err != nil {
		t.Fatal(err)
	}
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "moving", Value: []byte("across")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	coord := txnCoordinator(t, c, "survivor")
	c.Kill(coord)
	c.WaitBrokers(2)
	waitServing(c)
	if err := p.EndTransaction(ctxT(t), kgo.TryCommit); err != nil {
		t.Fatalf("commit after the coordinator died: %v", err)
	}
	want := []string{"before", "across"}
	testutil.Eventually(t, "the committed records", func() bool {
		return slices.Equal(readValues(t, c, "moving", true, len(want)), want)
	})
}

// Exactly once through consume-transform-produce: franz-go's
// GroupTransactSession reads input, writes output and commits its input
// offsets in the same transactions (TxnOffsetCommit) while the transaction
// coordinator is killed, then a leader of the output topic. The output, read
// with read_committed, holds every input exactly once.
func TestGroupTransactSessionExactlyOnce(t *testing.T) {
	// Sessions join the group again and again: no initial rebalance
	// delay (the join of an empty group would wait for it each time).
	c := brokertest.Start(t, 3, func(_ int, cfg *broker.Config) { cfg.GroupInitialRebalanceDelay = 0 })
	waitServing(c)
	adm := c.Admin()
	for _, topic := range []string{"input", "output"} {
		if _, err := adm.CreateTopic(ctxT(t), 2, 3, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	waitServing(c)
	const n = 300
	var in []string
	for i := range n {
		in = append(in, fmt.Sprintf("v%03d", i))
	}
	produceValues(t, c.Client(), "input", in)

	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A new session every few transactions: each joins the group
		// and starts from the committed offsets, so offsets committed in
		// transactions are what keeps the output free of repeats.
		for ctx.Err() == nil {
			sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.Seeds()...), kgo.TransactionalID("etl"),
				kgo.ConsumerGroup("etl-group"), kgo.ConsumeTopics("input"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.RequireStableFetchOffsets(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
				kgo.MaxBufferedRecords(50), kgo.FetchMaxBytes(2000), kgo.RecordRetries(1000))
			if err != nil {
				t.Error(err)
				return
			}
			for range 5 {
				fs := sess.PollRecords(ctx, 30)
				if ctx.Err() != nil {
					break
				}
				if err := sess.Begin(); err != nil {
					t.Errorf("begin: %v", err)
					break
				}
				fs.EachRecord(func(r *kgo.Record) {
					sess.Produce(ctx, &kgo.Record{Topic: "output", Value: append([]byte("out-"), r.Value...)}, nil)
				})
				if _, err := sess.End(ctx, kgo.TryCommit); err != nil && ctx.Err() == nil {
					// A failed transaction is aborted and its input read
					// again: that is the point. Keep going.
					t.Logf("end: %v", err)
				}
			}
			sess.Close()
		}
	}()

	// read reads the committed output.
	read := func(parent context.Context) []string {
		cl := c.Client(kgo.ConsumeTopics("output"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		defer cl.Close()
		rctx, rcancel := context.WithTimeout(parent, 3*time.Second)
		defer rcancel()
		var out []string
		for {
			fs := cl.PollFetches(rctx)
			if rctx.Err() != nil {
				return out
			}
			fs.EachRecord(func(r *kgo.Record) { out = append(out, string(r.Value)) })
		}
	}
	waitFor := func(what string, atLeast int) {
		t.Helper()
		for ctx.Err() == nil {
			if len(read(ctx)) >= atLeast {
				return
			}
		}
		t.Fatalf("timed out waiting for %s", what)
	}

	waitFor("some output", 60)
	coord := txnCoordinator(t, c, "etl")
	t.Logf("killing the transaction coordinator, broker %d", coord)
	c.Kill(coord)
	c.WaitBrokers(2)
	waitFor("output after the coordinator died", 150)
	c.StartNode(coord)
	waitServing(c)
	leaderID, _ := c.PartitionInfo("output", 0)
	t.Logf("killing output-0's leader, broker %d", leaderID)
	c.Kill(c.Index(leaderID))
	c.WaitBrokers(2)
	waitFor("all output", n)
	cancel()
	wg.Wait()

	got := read(context.Background())
	seen := map[string]int{}
	for _, v := range got {
		seen[v]++
	}
	for _, v := range in {
		if seen["out-"+v] != 1 {
			t.Errorf("out-%s appears %d times, want exactly once", v, seen["out-"+v])
		}
	}
	if len(got) != n {
		t.Errorf("read %d committed output records, want %d", len(got), n)
	}
}

// Offsets committed inside a transaction (AddOffsetsToTxn, TxnOffsetCommit)
// become the group's only when the transaction commits: until then an
// OffsetFetch sees the old offset (UNSTABLE_OFFSET_COMMIT with
// require_stable), after an abort the old offset stays.
func TestTxnOffsetCommit(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	adm := c.Admin()
	if _, err := adm.CreateTopic(ctxT(t), 1, 3, nil, "src"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	offsets := kadm.Offsets{}
	offsets.AddOffset("src", 0, 5, -1)
	testutil.Eventually(t, "offset 5 committed outside a transaction", func() bool {
		res, err := adm.CommitOffsets(ctxT(t), "g-tx", offsets)
		return err == nil && res.Ok()
	})
	waitServing(c) // every broker knows __consumer_offsets, made by that commit
	committed := func() int64 {
		t.Helper()
		fetched, err := adm.FetchOffsets(ctxT(t), "g-tx")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := fetched.Lookup("src", 0)
		return o.At
	}
	p := txnProducer(t, c, "offsets-txn")
	inTxn := func(offset int64, commit bool) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "src", Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		pid, epoch, err := p.ProducerID(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		add := kmsg.NewPtrAddOffsetsToTxnRequest()
		add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "offsets-txn", pid, epoch, "g-tx"
		if resp, err := add.RequestWith(ctxT(t), p); err != nil || resp.ErrorCode != 0 {
			t.Fatalf("AddOffsetsToTxn: %+v %v", resp, err)
		}
		commitReq := kmsg.NewPtrTxnOffsetCommitRequest()
		commitReq.TransactionalID, commitReq.Group, commitReq.ProducerID, commitReq.ProducerEpoch = "offsets-txn", "g-tx", pid, epoch
		commitReq.Generation = -1
		rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = 0, offset
		commitReq.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "src", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{rp}}}
		resp, err := commitReq.RequestWith(ctxT(t), p)
		if err != nil || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			t.Fatalf("TxnOffsetCommit: %+v %v", resp, err)
		}
		if got := committed(); got == offset {
			t.Fatalf("offset %d visible before the transaction ended", offset)
		}
		stable := kmsg.NewPtrOffsetFetchRequest()
		stable.Version = 7
		stable.Group, stable.RequireStable = "g-tx", true
		stable.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "src", Partitions: []int32{0}}}
		if sresp, err := stable.RequestWith(ctxT(t), p); err != nil || sresp.Topics[0].Partitions[0].ErrorCode != kerr.UnstableOffsetCommit.Code {
			t.Errorf("require_stable OffsetFetch during the transaction: %+v %v, want UNSTABLE_OFFSET_COMMIT", sresp, err)
		}
		if err := p.EndTransaction(ctxT(t), kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	inTxn(9, true)
	testutil.Eventually(t, "offset 9 committed with its transaction", func() bool { return committed() == 9 })
	inTxn(12, false)
	// Once the abort's marker reached the offsets partition, nothing is
	// pending (require_stable answers), and the offset is still 9.
	testutil.Eventually(t, "the aborted offsets dropped", func() bool {
		stable := kmsg.NewPtrOffsetFetchRequest()
		stable.Version = 7
		stable.Group, stable.RequireStable = "g-tx", true
		stable.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "src", Partitions: []int32{0}}}
		resp, err := stable.RequestWith(ctxT(t), p)
		return err == nil && resp.ErrorCode == 0 && resp.Topics[0].Partitions[0].ErrorCode == 0
	})
	if got := committed(); got != 9 {
		t.Fatalf("after an aborted transaction the offset is %d, want 9", got)
	}
}

// A commit prepared when the coordinator dies is finished by the next one:
// the only replica of the transaction's data partition is down when the
// producer commits (the coordinator writes PrepareCommit, answers, and
// cannot place the marker), then the coordinator is killed and the data
// partition's broker comes back; the coordinator that replays the
// transaction's state writes the marker, and the record becomes visible
// to read_committed readers.
func TestPreparedCommitResumedByNextCoordinator(t *testing.T) {
	c := brokertest.Start(t, 3)
	waitServing(c)
	if _, err := c.Admin().CreateTopic(ctxT(t), 1, 1, nil, "lonely"); err != nil {
		t.Fatal(err)
	}
	waitServing(c)
	dataLeader, _ := c.PartitionInfo("lonely", 0)
	data := c.Index(dataLeader)
	// A transactional id whose coordinator is not the data partition's
	// broker.
	id := ""
	for i := 0; id == ""; i++ {
		if cand := fmt.Sprintf("resume-%d", i); txnCoordinator(t, c, cand) != data {
			id = cand
		}
	}
	coord := txnCoordinator(t, c, id)
	p := txnProducer(t, c, id)
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctxT(t), &kgo.Record{Topic: "lonely", Value: []byte("prepared")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.Kill(data)
	c.WaitBrokers(2)
	if err := p.EndTransaction(ctxT(t), kgo.TryCommit); err != nil {
		t.Fatalf("commit with the data partition down (answered once prepared): %v", err)
	}
	c.Kill(coord)
	c.StartNode(data)
	c.StartNode(coord)
	waitServing(c)
	testutil.Eventually(t, "the prepared commit finished by the next coordinator", func() bool {
		got := readValues(t, c, "lonely", true, 1)
		return slices.Equal(got, []string{"prepared"})
	})
}
