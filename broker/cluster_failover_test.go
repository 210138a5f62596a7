package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// Kill the leader of an RF3 partition while an idempotent acks=all producer
// writes: every acknowledged record is read back exactly once, in order;
// the killed broker restarts, catches up and rejoins the ISR.
func TestClusterLeaderKilledNoAckedLoss(t *testing.T) {
	c := brokertest.Start(t, 3)
	c.CreateTopic("orders", 1, 3, nil)
	leader, _ := c.PartitionInfo("orders", 0)
	li := c.Index(leader)

	cl := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordRetries(100),
		kgo.RetryTimeout(30*time.Second), kgo.ProduceRequestTimeout(5*time.Second))
	ctx := ctxT(t)
	var mu sync.Mutex
	var acked []string
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			v := fmt.Sprintf("r%04d", i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Value: []byte(v)}).FirstErr(); err != nil {
				t.Errorf("produce %s: %v", v, err)
				return
			}
			mu.Lock()
			acked = append(acked, v)
			mu.Unlock()
		}
	}
	produce(0, 100)
	done := make(chan struct{})
	go func() { defer close(done); produce(100, 300) }()
	testutil.Eventually(t, "production under way", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 150 })
	start := time.Now()
	c.Kill(li)
	<-done
	t.Logf("leader %d killed; %d acked, producing went on after %v", leader, len(acked), time.Since(start))
	newLeader, _ := c.PartitionInfo("orders", 0)
	if newLeader == leader || newLeader < 0 {
		t.Fatalf("leader still %d", newLeader)
	}
	checkRecords(t, consumeCluster(t, c, "orders", len(acked)), acked)

	c.StartNode(li)
	testutil.Eventually(t, "the killed broker back in the ISR", func() bool { _, isr := c.PartitionInfo("orders", 0); return len(isr) == 3 })
	testutil.Eventually(t, "the restarted replica caught up", func() bool {
		r := replica(c, li, "orders", 0)
		return r != nil && r.LogEndOffset() == int64(len(acked))
	})
	sameLogs(t, c, "orders", 0)
}

// Kill the controller: a new one is elected and topic creation works.
func TestClusterControllerKilled(t *testing.T) {
	c := brokertest.Start(t, 3)
	ctrl, ok := c.Brokers[0].Controller()
	if !ok {
		t.Fatal("no controller after start")
	}
	c.Kill(c.Index(ctrl))
	testutil.Eventually(t, "a new controller every broker agrees on", func() bool {
		agreed := int32(-1)
		for _, b := range c.Brokers {
			if b == nil {
				continue
			}
			id, ok := b.Controller()
			if !ok || id == ctrl || (agreed >= 0 && id != agreed) {
				return false
			}
			agreed = id
		}
		return true
	})
	c.CreateTopic("after", 2, 2, nil)
}

// Two of three brokers down: acks=all fails with NOT_ENOUGH_REPLICAS and
// nothing is acknowledged falsely; one back and producing resumes.
func TestClusterNotEnoughReplicas(t *testing.T) {
	c := brokertest.Start(t, 3)
	c.CreateTopic("strict", 1, 3, nil)
	leader, _ := c.PartitionInfo("strict", 0)
	li := c.Index(leader)
	var others []int
	for i := range c.Brokers {
		if i != li {
			others = append(others, i)
		}
	}
	c.Kill(others[0])
	c.Kill(others[1])
	// With two of three down there is no Raft quorum to shrink the ISR;
	// the leader stops counting the dead followers after the lag time.
	p := replica(c, li, "strict", 0)
	testutil.Eventually(t, "the leader to count one in-sync replica", func() bool { return p.CheckMinISR() != nil })
	// Not idempotent: producer ids come from the controller, and there is none.
	cl := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0), kgo.RecordRetries(1), kgo.ProduceRequestTimeout(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "strict", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("produce with one in sync: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if end := replica(c, li, "strict", 0).LogEndOffset(); end != 0 {
		t.Fatalf("a refused record reached the log (end %d)", end)
	}
	c.StartNode(others[0])
	testutil.Eventually(t, "two in sync", func() bool { return p.CheckMinISR() == nil })
	cl2 := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	produceValues(t, cl2, "strict", []string{"y"})
	checkRecords(t, consumeCluster(t, c, "strict", 1), []string{"y"})
}

// A leader whose followers have not fetched its latest records (its own
// acks=1 tail) dies; a follower leads a new epoch and writes its own
// records; the old leader returns as a follower: it truncates exactly at
// the divergence, and every replica is byte-identical below the high
// watermark.
func TestClusterDivergentTailTruncated(t *testing.T) {
	// A long lag time keeps the paused followers in the ISR.
	c := brokertest.Start(t, 3, func(_ int, cfg *broker.Config) { cfg.Cluster.ReplicaLagMax = time.Minute })
	c.CreateTopic("div", 1, 3, nil)
	leader, _ := c.PartitionInfo("div", 0)
	li := c.Index(leader)
	committed := values(20, "c")
	produceValues(t, c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0)), "div", committed)
	var followers []int
	for i := range c.Brokers {
		if i != li {
			followers = append(followers, i)
			testutil.Eventually(t, "the follower to have the committed records", func() bool { return replica(c, i, "div", 0).LogEndOffset() == 20 })
			broker.PauseReplication(c.Brokers[i], true)
			testutil.Eventually(t, "the follower's fetches to stop", func() bool { return broker.ReplicationParked(c.Brokers[i]) })
		}
	}
	// acks=1 writes the leader alone: an uncommitted tail.
	one := c.Client(kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0))
	produceValues(t, one, "div", values(5, "tail"))
	old := replica(c, li, "div", 0)
	if old.LogEndOffset() != 25 || old.HighWatermark() != 20 {
		t.Fatalf("old leader end %d hw %d, want 25 and 20", old.LogEndOffset(), old.HighWatermark())
	}
	c.Kill(li)
	testutil.Eventually(t, "a follower to lead", func() bool {
		l, _ := c.PartitionInfo("div", 0)
		return l >= 0 && l != leader
	})
	for _, i := range followers {
		broker.PauseReplication(c.Brokers[i], false)
	}
	after := values(7, "new")
	produceValues(t, c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.DisableIdempotentWrite()), "div", after)
	c.StartNode(li)
	testutil.Eventually(t, "the old leader to rejoin and catch up", func() bool {
		r := replica(c, li, "div", 0)
		_, isr := c.PartitionInfo("div", 0)
		return r != nil && r.LogEndOffset() == 27 && len(isr) == 3
	})
	sameLogs(t, c, "div", 0)
	checkRecords(t, consumeCluster(t, c, "div", 27), append(committed, after...))
}

// Stop every broker and start them again: topics, configs and data are
// all there.
func TestClusterFullRestart(t *testing.T) {
	c := brokertest.Start(t, 3)
	ret := "7200000"
	c.CreateTopic("keep", 2, 3, map[string]*string{"retention.ms": &ret})
	want := values(50, "k")
	produceValues(t, c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner())), "keep", want)
	for i := range c.Brokers {
		c.Stop(i)
	}
	for i := range c.Brokers {
		c.StartNode(i)
	}
	c.WaitBrokers(3)
	testutil.Eventually(t, "partitions led again", func() bool { l, _ := c.PartitionInfo("keep", 0); return l >= 0 })
	checkRecords(t, consumeCluster(t, c, "keep", len(want)), want)
	cfgs, err := c.Admin().DescribeTopicConfigs(ctxT(t), "keep")
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := cfgs.On("keep", nil)
	found := false
	for _, e := range rc.Configs {
		found = found || (e.Key == "retention.ms" && e.MaybeValue() == ret)
	}
	if !found {
		t.Fatal("topic config lost across a full restart")
	}
}

// Restart every broker in turn while an idempotent acks=all producer
// writes: nothing acknowledged is lost or duplicated.
func TestClusterRollingRestartUnderLoad(t *testing.T) {
	c := brokertest.Start(t, 3)
	c.CreateTopic("roll", 1, 3, nil)
	cl := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordRetries(1000),
		kgo.RetryTimeout(60*time.Second), kgo.ProduceRequestTimeout(5*time.Second))
	ctx := ctxT(t)
	var mu sync.Mutex
	var acked []string
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("r%05d", i)
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "roll", Value: []byte(v)}).FirstErr(); err != nil {
				t.Errorf("produce %s: %v", v, err)
				return
			}
			mu.Lock()
			acked = append(acked, v)
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	for i := range c.Brokers {
		n := count()
		testutil.Eventually(t, "progress before restarting", func() bool { return count() >= n+20 })
		c.Stop(i)
		c.StartNode(i)
		testutil.Eventually(t, "the ISR whole again", func() bool { _, isr := c.PartitionInfo("roll", 0); return len(isr) == 3 })
	}
	n := count()
	testutil.Eventually(t, "progress after the last restart", func() bool { return count() >= n+20 })
	close(stop)
	<-done
	checkRecords(t, consumeCluster(t, c, "roll", len(acked)), acked)
	sameLogs(t, c, "roll", 0)
}

// Requests to a replica that does not lead get NOT_LEADER_OR_FOLLOWER; a
// stale leader epoch gets FENCED_LEADER_EPOCH and a future one
// UNKNOWN_LEADER_EPOCH, so clients re-route by themselves.
func TestClusterNonLeaderErrors(t *testing.T) {
	c := brokertest.Start(t, 3)
	c.CreateTopic("route", 1, 3, nil)
	leader, _ := c.PartitionInfo("route", 0)
	li := c.Index(leader)
	fi := (li + 1) % 3
	follower := dialRaw(t, c.Brokers[fi])
	if r := produceRawOnce(follower, "route", idempotentBatch(-1, -1, -1, "x")); r.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to a follower: error %d", r.ErrorCode)
	}
	ldr := dialRaw(t, c.Brokers[li])
	epoch := replica(c, li, "route", 0).LeaderEpoch()
	for _, tt := range []struct {
		epoch int32
		want  int16
	}{{epoch - 1, kerr.FencedLeaderEpoch.Code}, {epoch + 1, kerr.UnknownLeaderEpoch.Code}, {epoch, 0}} {
		fr := fetchRequest("route", 0, 0, 0, 0)
		fr.Version = 12
		fr.Topics[0].Partitions[0].CurrentLeaderEpoch = tt.epoch
		if code := ldr.send(fr).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != tt.want {
			t.Fatalf("fetch with epoch %d (current %d): error %d, want %d", tt.epoch, epoch, code, tt.want)
		}
	}
}
