package broker_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage/batch"
)

// replicaBytes reads a replica's whole log, batch by batch.
func replicaBytes(t *testing.T, p *partition.Partition) (out []byte, batches int) {
	t.Helper()
	for off := p.Log().LogStartOffset(); off < p.Log().LogEndOffset(); {
		reg, err := p.Log().Read(off, 1<<20, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := reg.Bytes()
		reg.Release()
		if err != nil || len(b) == 0 {
			t.Fatalf("read at %d: %v (%d bytes)", off, err, len(b))
		}
		for it := batch.NewIter(b); it.Next(); batches++ {
			out = append(out, it.Batch()...)
			off = it.Header().LastOffset() + 1
		}
	}
	return out, batches
}

// Retention and compaction run on a cluster's replicas (they once ran only
// on a standalone broker's topics). A follower that lost its disk replicates a leader whose log compaction
// has left gaps (and emptied idempotent batches): it catches up, rejoins
// the ISR and holds exactly the leader's records.
func TestClusterWipedFollowerCatchesUpOnCompactedLog(t *testing.T) {
	c := brokertest.Start(t, 3)
	policy, seg := "compact", "16384"
	c.CreateTopic("kv", 1, 3, map[string]*string{"cleanup.policy": &policy, "segment.bytes": &seg})
	cl := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	for round := range 60 {
		var recs []*kgo.Record
		for k := range 50 {
			recs = append(recs, &kgo.Record{Topic: "kv", Key: fmt.Appendf(nil, "k%d", k), Value: fmt.Appendf(nil, "%d", round)})
		}
		if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	leaderID, _ := c.PartitionInfo("kv", 0)
	li := c.Index(leaderID)
	leader := replica(c, li, "kv", 0)
	before := leader.Log().Size()
	c.Brokers[li].RunRetention()
	if leader.Log().Size() >= before {
		t.Fatalf("leader's log not compacted: %d bytes, was %d", leader.Log().Size(), before)
	}
	want, n := replicaBytes(t, leader)

	fi := (li + 1) % 3
	c.Kill(fi)
	c.Wipe(fi)
	c.StartNode(fi)
	testutil.Eventually(t, "the wiped follower caught up and back in the ISR", func() bool {
		r := replica(c, fi, "kv", 0)
		_, isr := c.PartitionInfo("kv", 0)
		return r != nil && r.LogEndOffset() == leader.LogEndOffset() && len(isr) == 3
	})
	if got, m := replicaBytes(t, replica(c, fi, "kv", 0)); !bytes.Equal(got, want) {
		t.Fatalf("follower's log (%d batches, %d bytes) differs from the compacted leader's (%d batches, %d bytes)", m, len(got), n, len(want))
	}
}
