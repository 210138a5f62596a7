package broker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
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
// hold the same markers. Producers cannot send transactional batches
// themselves until the coordinator serves (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).
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

	// A producer's own transactional batch is refused for now.
	raw := kmsg.NewPtrProduceRequest()
	raw.Acks, raw.TimeoutMillis = -1, 5000
	raw.Topics = []kmsg.ProduceRequestTopic{{Topic: "tx", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: txnRecords(300, 0, "x")}}}}
	resp, err := raw.RequestWith(ctxT(t), c.Client().Broker(int(leaderID)))
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Errorf("a client's transactional batch: code %d, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", code)
	}
}
