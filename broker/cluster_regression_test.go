package broker

// Cluster regressions found in review: each lost acknowledged records
// before its fix.

import (
	"os"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/testutil"
)

// A follower loses its disk and restarts at once, then the leader dies:
// the wiped broker must not be elected with an empty log (a restarted
// broker leaves the ISRs until it has caught up again).
func TestRegressionWipedFollowerNotElected(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("w", 1, 3, nil)
	want := values(3000, "w")
	produceValues(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(512)), "w", want)
	ti, _ := tc.brokers[0].Topic("w")
	reps := ti.Partitions[0].Replicas
	li, fi := tc.index(ti.Partitions[0].Leader), tc.index(reps[1])
	if fi == li {
		fi = tc.index(reps[2])
	}
	tc.kill(fi)
	if err := os.RemoveAll(tc.cfgs[fi].DataDir); err != nil {
		t.Fatal(err)
	}
	tc.cfgs[fi].Cluster.ReplicaFetchBytes = 1 // a big log: catching up takes a while
	tc.start(fi)
	testutil.Eventually(t, "the wiped broker registered", func() bool {
		return len(tc.brokers[li].Cluster().Brokers) == 3 && tc.replica(fi, "w", 0) != nil
	})
	tc.kill(li)
	testutil.Eventually(t, "a new leader", func() bool {
		l, _ := tc.partitionInfo("w", 0)
		return l >= 0 && l != ti.Partitions[0].Leader
	})
	l, _ := tc.partitionInfo("w", 0)
	if nl := tc.replica(tc.index(l), "w", 0); nl.LogEndOffset() < int64(len(want)) {
		t.Fatalf("leader %d elected with log end %d: %d acknowledged records gone", l, nl.LogEndOffset(), len(want))
	}
	checkRecords(t, consumeCluster(t, tc, "w", len(want)), want)
}

// A full restart after a Raft snapshot: nodes must not act on the
// snapshot's old leaders and epochs before the Raft log is replayed.
func TestRegressionFullRestartFromSnapshot(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("s", 1, 3, nil)
	acks := func() *kgo.Client {
		return tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.DisableIdempotentWrite())
	}
	first := values(10, "e1-")
	produceValues(t, acks(), "s", first)
	for _, b := range tc.brokers {
		if err := b.cl.node.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	leader, _ := tc.partitionInfo("s", 0)
	li := tc.index(leader)
	tc.kill(li)
	testutil.Eventually(t, "a new leader", func() bool { l, _ := tc.partitionInfo("s", 0); return l >= 0 && l != leader })
	second := values(10, "e2-")
	produceValues(t, acks(), "s", second)
	tc.start(li)
	testutil.Eventually(t, "the ISR whole", func() bool { _, isr := tc.partitionInfo("s", 0); return len(isr) == 3 })
	for i := range tc.brokers {
		tc.kill(i)
	}
	for i := range tc.brokers {
		tc.start(i)
	}
	tc.waitBrokers(3)
	want := append(first, second...)
	checkRecords(t, consumeCluster(t, tc, "s", len(want)), want)
	for i := range tc.brokers {
		testutil.Eventually(t, "every replica to keep every record", func() bool {
			r := tc.replica(i, "s", 0)
			return r != nil && r.LogEndOffset() == int64(len(want))
		})
	}
}

// A partition leader is killed, its disk wiped, and it starts again at
// once, before the metadata notices: it must not lead in its old epoch with
// an empty log, and its followers must not cut their logs to its empty
// high watermark (issue 9, defect 3: 12,873 and 17,308 of 60,000
// acknowledged records lost this way with real processes). Here the wiped
// broker comes back without its Serf peers, so the metadata cannot see its
// new incarnation at all while Raft brings it the old roles.
func TestRegressionWipedLeaderRestartsAtOnce(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("wl", 1, 3, nil)
	want := values(2000, "wl")
	produceValues(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(512)), "wl", want)
	leader, _ := tc.partitionInfo("wl", 0)
	li := tc.index(leader)
	tc.kill(li)
	if err := os.RemoveAll(tc.cfgs[li].DataDir); err != nil {
		t.Fatal(err)
	}
	cfg := tc.cfgs[li]
	cc := *cfg.Cluster
	cc.Bootstrap, cc.Peers, cc.SerfAddr = false, nil, freeSerf(t) // a wiped bootstrap node is another test
	cfg.Cluster = &cc
	wiped, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := wiped.Start(); err != nil {
		t.Fatal(err)
	}
	tc.brokers[li] = wiped
	testutil.Eventually(t, "Raft brings the wiped broker the metadata", func() bool {
		_, err := wiped.Topic("wl")
		return err == nil
	})
	testutil.Eventually(t, "a new leader among the followers", func() bool {
		l, _ := tc.partitionInfo("wl", 0)
		return l >= 0 && l != leader
	})
	for i := range tc.brokers {
		if i == li {
			continue
		}
		if end := tc.replica(i, "wl", 0).LogEndOffset(); end < int64(len(want)) {
			t.Fatalf("follower %d cut to %d: %d acknowledged records gone", i+1, end, int64(len(want))-end)
		}
	}
	// Back with its peers, the wiped broker catches up from the new leader.
	tc.kill(li)
	tc.start(li)
	testutil.Eventually(t, "every replica back in the ISR at one log end", func() bool {
		if _, isr := tc.partitionInfo("wl", 0); len(isr) != 3 {
			return false
		}
		for i := range tc.brokers {
			if r := tc.replica(i, "wl", 0); r == nil || r.LogEndOffset() != int64(len(want)) {
				return false
			}
		}
		return true
	})
	checkRecords(t, consumeCluster(t, tc, "wl", len(want)), want)
	tc.sameLogs("wl", 0)
}
