package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/partition"
)

func (tc *testCluster) kill(i int) {
	tc.t.Helper()
	if err := tc.brokers[i].Kill(); err != nil {
		tc.t.Logf("kill broker %d: %v", i+1, err)
	}
	tc.brokers[i] = nil
}

func (tc *testCluster) index(id int32) int {
	for i := range tc.brokers {
		if KafkaNodeID(tc.cfgs[i].NodeID) == id {
			return i
		}
	}
	return -1
}

func (tc *testCluster) replica(i int, topic string, p int32) *partition.Partition {
	b := tc.brokers[i]
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	return b.cl.parts[partKey{Topic: topic, Partition: p}]
}

func (tc *testCluster) createTopic(name string, partitions int32, rf int16, configs map[string]*string) {
	tc.t.Helper()
	adm := kadm.NewClient(tc.client())
	res, err := adm.CreateTopic(ctxT(tc.t), partitions, rf, configs, name)
	if err != nil || res.Err != nil {
		tc.t.Fatalf("create %s: %v %v", name, err, res.Err)
	}
	testutil.Eventually(tc.t, name+" fully in sync", func() bool {
		for p := range partitions {
			if _, isr := tc.partitionInfo(name, p); len(isr) != int(rf) {
				return false
			}
		}
		return true
	})
}

// sameLogs checks that every live replica holds the same bytes below the
// high watermark.
func (tc *testCluster) sameLogs(topic string, p int32) {
	tc.t.Helper()
	var want []byte
	var hw int64 = -1
	for i, b := range tc.brokers {
		if b == nil {
			continue
		}
		r := tc.replica(i, topic, p)
		if hw < 0 || r.HighWatermark() < hw {
			hw = r.HighWatermark()
		}
	}
	for i, b := range tc.brokers {
		if b == nil {
			continue
		}
		reg, err := tc.replica(i, topic, p).Log().Read(0, 1<<30, hw)
		if err != nil {
			tc.t.Fatal(err)
		}
		got, err := reg.Bytes()
		reg.Release()
		if err != nil {
			tc.t.Fatal(err)
		}
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			tc.t.Fatalf("broker %d's log below the high watermark %d differs from the others'", i+1, hw)
		}
	}
}

// Kill the leader of an RF3 partition while an idempotent acks=all producer
// writes: every acknowledged record is read back exactly once, in order;
// the killed broker restarts, catches up and rejoins the ISR.
func TestClusterLeaderKilledNoAckedLoss(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("orders", 1, 3, nil)
	leader, _ := tc.partitionInfo("orders", 0)
	li := tc.index(leader)

	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordRetries(100),
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
	tc.kill(li)
	<-done
	t.Logf("leader %d killed; %d acked, producing went on after %v", leader, len(acked), time.Since(start))
	newLeader, _ := tc.partitionInfo("orders", 0)
	if newLeader == leader || newLeader < 0 {
		t.Fatalf("leader still %d", newLeader)
	}
	checkRecords(t, consumeCluster(t, tc, "orders", len(acked)), acked)

	tc.start(li)
	testutil.Eventually(t, "the killed broker back in the ISR", func() bool { _, isr := tc.partitionInfo("orders", 0); return len(isr) == 3 })
	testutil.Eventually(t, "the restarted replica caught up", func() bool {
		r := tc.replica(li, "orders", 0)
		return r != nil && r.LogEndOffset() == int64(len(acked))
	})
	tc.sameLogs("orders", 0)
}

// Kill the controller: a new one is elected and topic creation works.
func TestClusterControllerKilled(t *testing.T) {
	tc := startCluster(t, 3)
	ctrl := tc.brokers[0].Cluster().ControllerID
	tc.kill(tc.index(ctrl))
	testutil.Eventually(t, "a new controller", func() bool {
		for _, b := range tc.brokers {
			if b != nil {
				if id := b.Cluster().ControllerID; id < 0 || id == ctrl {
					return false
				}
			}
		}
		return true
	})
	tc.createTopic("after", 2, 2, nil)
}

// Two of three brokers down: acks=all fails with NOT_ENOUGH_REPLICAS and
// nothing is acknowledged falsely; one back and producing resumes.
func TestClusterNotEnoughReplicas(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("strict", 1, 3, nil)
	leader, _ := tc.partitionInfo("strict", 0)
	li := tc.index(leader)
	var others []int
	for i := range tc.brokers {
		if i != li {
			others = append(others, i)
		}
	}
	tc.kill(others[0])
	tc.kill(others[1])
	// With two of three down there is no Raft quorum to shrink the ISR;
	// the leader stops counting the dead followers after the lag time.
	p := tc.replica(li, "strict", 0)
	testutil.Eventually(t, "the leader to count one in-sync replica", func() bool { return p.CheckMinISR() != nil })
	// Not idempotent: producer ids come from the controller, and there is none.
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0), kgo.RecordRetries(1), kgo.ProduceRequestTimeout(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "strict", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.NotEnoughReplicas) {
		t.Fatalf("produce with one in sync: %v, want NOT_ENOUGH_REPLICAS", err)
	}
	if end := tc.replica(li, "strict", 0).LogEndOffset(); end != 0 {
		t.Fatalf("a refused record reached the log (end %d)", end)
	}
	tc.start(others[0])
	testutil.Eventually(t, "two in sync", func() bool { return p.CheckMinISR() == nil })
	cl2 := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	produceValues(t, cl2, "strict", []string{"y"})
	checkRecords(t, consumeCluster(t, tc, "strict", 1), []string{"y"})
}

// A leader whose followers have not fetched its latest records (its own
// acks=1 tail) dies; a follower leads a new epoch and writes its own
// records; the old leader returns as a follower: it truncates exactly at
// the divergence, and every replica is byte-identical below the high
// watermark.
func TestClusterDivergentTailTruncated(t *testing.T) {
	tc := startCluster(t, 3)
	// A long lag time keeps the paused followers in the ISR.
	for i := range tc.cfgs {
		tc.cfgs[i].Cluster.ReplicaLagMax = time.Minute
	}
	for i := range tc.brokers {
		tc.kill(i)
		tc.start(i)
	}
	tc.waitBrokers(3)
	tc.createTopic("div", 1, 3, nil)
	leader, _ := tc.partitionInfo("div", 0)
	li := tc.index(leader)
	committed := values(20, "c")
	produceValues(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0)), "div", committed)
	var followers []int
	for i := range tc.brokers {
		if i != li {
			followers = append(followers, i)
			testutil.Eventually(t, "the follower to have the committed records", func() bool { return tc.replica(i, "div", 0).LogEndOffset() == 20 })
			tc.brokers[i].pauseReplication(true)
			testutil.Eventually(t, "the follower's fetches to stop", tc.brokers[i].replicationParked)
		}
	}
	// acks=1 writes the leader alone: an uncommitted tail.
	one := tc.client(kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(0))
	produceValues(t, one, "div", values(5, "tail"))
	old := tc.replica(li, "div", 0)
	if old.LogEndOffset() != 25 || old.HighWatermark() != 20 {
		t.Fatalf("old leader end %d hw %d, want 25 and 20", old.LogEndOffset(), old.HighWatermark())
	}
	tc.kill(li)
	testutil.Eventually(t, "a follower to lead", func() bool {
		l, _ := tc.partitionInfo("div", 0)
		return l >= 0 && l != leader
	})
	for _, i := range followers {
		tc.brokers[i].pauseReplication(false)
	}
	after := values(7, "new")
	produceValues(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.DisableIdempotentWrite()), "div", after)
	tc.start(li)
	testutil.Eventually(t, "the old leader to rejoin and catch up", func() bool {
		r := tc.replica(li, "div", 0)
		_, isr := tc.partitionInfo("div", 0)
		return r != nil && r.LogEndOffset() == 27 && len(isr) == 3
	})
	tc.sameLogs("div", 0)
	checkRecords(t, consumeCluster(t, tc, "div", 27), append(committed, after...))
}

// Stop every broker and start them again: topics, configs and data are
// all there.
func TestClusterFullRestart(t *testing.T) {
	tc := startCluster(t, 3)
	ret := "7200000"
	tc.createTopic("keep", 2, 3, map[string]*string{"retention.ms": &ret})
	want := values(50, "k")
	produceValues(t, tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner())), "keep", want)
	for i := range tc.brokers {
		if err := tc.brokers[i].Close(); err != nil {
			t.Logf("close %d: %v", i+1, err)
		}
		tc.brokers[i] = nil
	}
	for i := range tc.brokers {
		tc.start(i)
	}
	tc.waitBrokers(3)
	testutil.Eventually(t, "partitions led again", func() bool { l, _ := tc.partitionInfo("keep", 0); return l >= 0 })
	checkRecords(t, consumeCluster(t, tc, "keep", len(want)), want)
	cfgs, err := kadm.NewClient(tc.client()).DescribeTopicConfigs(ctxT(t), "keep")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := cfgs.On("keep", nil)
	found := false
	for _, e := range c.Configs {
		found = found || (e.Key == "retention.ms" && e.MaybeValue() == ret)
	}
	if !found {
		t.Fatal("topic config lost across a full restart")
	}
}

// Restart every broker in turn while an idempotent acks=all producer
// writes: nothing acknowledged is lost or duplicated.
func TestClusterRollingRestartUnderLoad(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("roll", 1, 3, nil)
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordRetries(1000),
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
	for i := range tc.brokers {
		n := count()
		testutil.Eventually(t, "progress before restarting", func() bool { return count() >= n+20 })
		if err := tc.brokers[i].Close(); err != nil {
			t.Logf("close %d: %v", i+1, err)
		}
		tc.brokers[i] = nil
		tc.start(i)
		testutil.Eventually(t, "the ISR whole again", func() bool { _, isr := tc.partitionInfo("roll", 0); return len(isr) == 3 })
	}
	n := count()
	testutil.Eventually(t, "progress after the last restart", func() bool { return count() >= n+20 })
	close(stop)
	<-done
	checkRecords(t, consumeCluster(t, tc, "roll", len(acked)), acked)
	tc.sameLogs("roll", 0)
}

// Requests to a replica that does not lead get NOT_LEADER_OR_FOLLOWER; a
// stale leader epoch gets FENCED_LEADER_EPOCH and a future one
// UNKNOWN_LEADER_EPOCH, so clients re-route by themselves.
func TestClusterNonLeaderErrors(t *testing.T) {
	tc := startCluster(t, 3)
	tc.createTopic("route", 1, 3, nil)
	leader, _ := tc.partitionInfo("route", 0)
	li := tc.index(leader)
	fi := (li + 1) % 3
	follower := dialRaw(t, tc.brokers[fi])
	if r := produceRaw(follower, "route", idempotentBatch(-1, -1, -1, "x")); r.ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to a follower: error %d", r.ErrorCode)
	}
	ldr := dialRaw(t, tc.brokers[li])
	epoch := tc.replica(li, "route", 0).LeaderEpoch()
	for _, tc := range []struct {
		epoch int32
		want  int16
	}{{epoch - 1, kerr.FencedLeaderEpoch.Code}, {epoch + 1, kerr.UnknownLeaderEpoch.Code}, {epoch, 0}} {
		fr := fetchRequest("route", 0, 0, 0, 0)
		fr.Version = 12
		fr.Topics[0].Partitions[0].CurrentLeaderEpoch = tc.epoch
		if code := ldr.send(fr).(*kmsg.FetchResponse).Topics[0].Partitions[0].ErrorCode; code != tc.want {
			t.Fatalf("fetch with epoch %d (current %d): error %d, want %d", tc.epoch, epoch, code, tc.want)
		}
	}
}
