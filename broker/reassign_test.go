package broker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
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
)

// loadProducer produces acks=all records to topic until stopped,
// remembering every acknowledged value.
type loadProducer struct {
	mu     sync.Mutex
	acked  map[string]bool
	failed int
	stop   context.CancelFunc
	done   chan struct{}
}

func startLoad(t *testing.T, cl *kgo.Client, topic string) *loadProducer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lp := &loadProducer{acked: map[string]bool{}, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(lp.done)
		var inflight sync.WaitGroup
		for i := 0; ctx.Err() == nil; i++ {
			v := "load-" + strconv.Itoa(i)
			inflight.Add(1)
			cl.Produce(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i % 16)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
				defer inflight.Done()
				lp.mu.Lock()
				defer lp.mu.Unlock()
				if err == nil {
					lp.acked[v] = true
				} else {
					lp.failed++
				}
			})
			if i%64 == 63 {
				inflight.Wait() // bounded in flight
			}
		}
		inflight.Wait()
	}()
	t.Cleanup(func() { lp.stop(); <-lp.done })
	return lp
}

// finish stops producing and returns what was acknowledged.
func (lp *loadProducer) finish() map[string]bool {
	lp.stop()
	<-lp.done
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return lp.acked
}

func (lp *loadProducer) count() int {
	lp.mu.Lock()
	defer lp.mu.Unlock()
	return len(lp.acked)
}

// checkNoLoss reads topic from the start and checks every acknowledged
// value is there.
func checkNoLoss(t *testing.T, c *brokertest.Cluster, topic string, acked map[string]bool) {
	t.Helper()
	adm := c.Admin()
	ends, err := adm.ListEndOffsets(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	seen := map[string]bool{}
	for _, r := range consumeCluster(t, c, topic, int(total)) {
		seen[string(r.Value)] = true
	}
	lost := 0
	for v := range acked {
		if !seen[v] {
			lost++
		}
	}
	if lost > 0 || len(acked) == 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(acked))
	}
}

// assignment is each partition's replicas as broker i sees them.
func assignment(t *testing.T, c *brokertest.Cluster, i int, topic string) [][]int32 {
	t.Helper()
	ti, err := c.Brokers[i].Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]int32
	for _, p := range ti.Partitions {
		out = append(out, p.Replicas)
	}
	return out
}

func reassign(t *testing.T, adm *kadm.Client, topic string, targets map[int32][]int32) {
	t.Helper()
	req := kadm.AlterPartitionAssignmentsReq{}
	for p, r := range targets {
		req.Assign(topic, p, r)
	}
	res, err := adm.AlterPartitionAssignments(ctxT(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
}

func inProgress(t *testing.T, adm *kadm.Client, topic string) kadm.ListPartitionReassignmentsResponses {
	t.Helper()
	res, err := adm.ListPartitionReassignments(ctxT(t), kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// A fourth broker joins a three-broker cluster under acks=all load; every
// partition is moved to spread over all four, the leader of one moving
// off its broker: the new replicas catch up, join the ISR, the old ones
// leave with their data, and nothing acknowledged is lost.
func TestReassignOntoANewBroker(t *testing.T) {
	c := brokertest.New(t, 4)
	for i := range 3 {
		c.StartNode(i)
	}
	c.WaitBrokers(3)
	c.CreateTopic("moves", 3, 3, nil)
	lp := startLoad(t, c.Client(), "moves")
	testutil.Eventually(t, "load flowing", func() bool { return lp.count() > 500 })
	c.StartNode(3)
	c.WaitBrokers(4)

	before := assignment(t, c, 0, "moves")
	targets := map[int32][]int32{}
	for p, reps := range before {
		// Replace the partition's first replica (its leader, as created)
		// by broker 4, the newcomer.
		targets[int32(p)] = append([]int32{4}, reps[1:]...)
	}
	adm := c.Admin()
	reassign(t, adm, "moves", targets)
	testutil.Eventually(t, "every partition moved", func() bool {
		for i := range c.Brokers {
			got := assignment(t, c, i, "moves")
			for p, want := range targets {
				if !slices.Equal(got[p], want) {
					return false
				}
			}
		}
		return len(inProgress(t, adm, "moves")) == 0
	})
	testutil.Eventually(t, "full ISRs on the new replicas", func() bool {
		for p, want := range targets {
			leader, isr := c.PartitionInfo("moves", p)
			if !slices.Contains(want, leader) || len(isr) != 3 {
				return false
			}
		}
		return true
	})
	n := lp.count()
	testutil.Eventually(t, "more load after the move", func() bool {
		if lp.count() > n+500 {
			return true
		}
		t.Logf("acked %d, failed %d", lp.count(), lp.failed)
		for p := int32(0); p < 3; p++ {
			l, isr := c.PartitionInfo("moves", p)
			t.Logf("p%d leader %d isr %v", p, l, isr)
			for i := range c.Brokers {
				if r := replica(c, i, "moves", p); r != nil {
					t.Logf("  broker %d: role %+v hw %d leo %d", i+1, r.Role(), r.HighWatermark(), r.LogEndOffset())
				}
			}
		}
		return false
	})
	acked := lp.finish()
	checkNoLoss(t, c, "moves", acked)
	for p, reps := range before {
		gone := reps[0]
		if replica(c, c.Index(gone), "moves", int32(p)) != nil {
			t.Errorf("broker %d still holds moves-%d", gone, p)
		}
		if _, err := os.Stat(fmt.Sprintf("%s/moves-%d", c.Configs[c.Index(gone)].DataDir, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("broker %d kept moves-%d's data: %v", gone, p, err)
		}
		sameLogs(t, c, "moves", int32(p))
	}
}

// A reassignment throttled to a few KiB per second stays in progress (the
// new replica fetches no faster than the rate allows) and is listed with
// its adding and removing replicas; a new controller, after the old one is
// killed, finishes it once the throttle is lifted; a cancelled one goes
// back to the original replicas and the added replica's data goes.
func TestReassignThrottledCancelledAndAcrossControllerFailover(t *testing.T) {
	c := brokertest.Start(t, 4)
	c.CreateTopic("slow", 2, 2, nil)
	big := make([]string, 400)
	rnd := rand.New(rand.NewPCG(7, 8))
	for i := range big {
		b := make([]byte, 1000) // incompressible: the throttle counts what crosses the wire
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		big[i] = string(b)
	}
	manual := c.Client(kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := int32(0); p < 2; p++ {
		for i := 0; i < len(big); i += 8 { // 8 KB batches: the throttle is only as fine as a batch
			var recs []*kgo.Record
			for _, v := range big[i : i+8] {
				recs = append(recs, &kgo.Record{Topic: "slow", Partition: p, Value: []byte(v)})
			}
			if err := manual.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctrl := -1
	for i, b := range c.Brokers {
		if broker.IsController(b) {
			ctrl = i
		}
	}
	adm := c.Admin()
	const rate = 20_000
	if res, err := adm.AlterBrokerConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "follower.replication.throttled.rate", Value: kmsg.StringPtr(strconv.Itoa(rate))}}); err != nil || res[0].Err != nil {
		t.Fatalf("throttle: %v %v", err, res)
	}
	// Each partition gains a broker that is neither a replica nor the
	// controller.
	before := assignment(t, c, 0, "slow")
	targets, added := map[int32][]int32{}, map[int32]int32{}
	for p, reps := range before {
		for id := int32(1); id <= 4; id++ {
			if !slices.Contains(reps, id) && c.Index(id) != ctrl {
				targets[int32(p)], added[int32(p)] = []int32{reps[0], id}, id
				break
			}
		}
	}
	start := time.Now()
	reassign(t, adm, "slow", targets)
	listed := inProgress(t, adm, "slow")
	for p, id := range added {
		r, ok := listed["slow"][p]
		if !ok || !slices.Equal(r.AddingReplicas, []int32{id}) || !slices.Contains(r.Replicas, id) {
			t.Fatalf("partition %d listed as %+v, want broker %d adding", p, r, id)
		}
	}
	// The throttle bounds what the new replica of partition 1 fetched.
	testutil.Eventually(t, "the new replica fetching", func() bool {
		rp := replica(c, c.Index(added[1]), "slow", 1)
		return rp != nil && rp.Log().Size() > 0
	})
	if rp := replica(c, c.Index(added[1]), "slow", 1); rp != nil {
		allowed := int64(rate*time.Since(start).Seconds()) + 2*rate + 64<<10 // a second's burst per partition, one batch past
		if got := rp.Log().Size(); got > allowed || rp.LogEndOffset() >= int64(len(big)) {
			t.Fatalf("throttled replica holds %d bytes (%d records) after %v; the throttle allows %d", got, rp.LogEndOffset(), time.Since(start), allowed)
		}
	}
	// Cancel partition 1's; partition 0's goes on across a controller
	// failover.
	cancelReq := kadm.AlterPartitionAssignmentsReq{}
	cancelReq.CancelAssign("slow", 1)
	res, err := adm.AlterPartitionAssignments(ctxT(t), cancelReq)
	if err != nil || res.Error() != nil {
		t.Fatalf("cancel: %v %v", err, res.Error())
	}
	testutil.Eventually(t, "partition 1 back to its replicas, the added one's data gone", func() bool {
		got := assignment(t, c, ctrl, "slow")
		_, err := os.Stat(fmt.Sprintf("%s/slow-1", c.Configs[c.Index(added[1])].DataDir))
		return slices.Equal(got[1], before[1]) && errors.Is(err, os.ErrNotExist)
	})
	res, err = adm.AlterPartitionAssignments(ctxT(t), cancelReq)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["slow"][1]; !errors.Is(r.Err, kerr.NoReassignmentInProgress) {
		t.Errorf("cancelling nothing: %v", r.Err)
	}

	c.Kill(ctrl)
	survivors := c.Admin()
	testutil.Eventually(t, "a new controller lifting the throttle", func() bool {
		res, err := survivors.AlterBrokerConfigs(context.Background(), []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "follower.replication.throttled.rate"}})
		return err == nil && res[0].Err == nil
	})
	testutil.Eventually(t, "partition 0's reassignment finished by the new controller", func() bool {
		for i, b := range c.Brokers {
			if i == ctrl || b == nil {
				continue
			}
			if got := assignment(t, c, i, "slow"); !slices.Equal(got[0], targets[0]) {
				l, isr := c.PartitionInfo("slow", 0)
				t.Logf("ctrl %d broker %d sees %v, want %v; leader %d isr %v", ctrl+1, i+1, got[0], targets[0], l, isr)
				for j := range c.Brokers {
					if j == ctrl || c.Brokers[j] == nil {
						continue
					}
					if r := replica(c, j, "slow", 0); r != nil {
						t.Logf("  broker %d: role %+v hw %d leo %d", j+1, r.Role(), r.HighWatermark(), r.LogEndOffset())
					}
				}
				return false
			}
		}
		return true
	})
	if got := consumeCluster(t, c, "slow", 2*len(big)); len(got) != 2*len(big) {
		t.Fatalf("read %d records, want %d", len(got), 2*len(big))
	}
}

// Preferred leader election moves leadership to each partition's first
// replica (after a reorder made another broker preferred); asked again it
// is not needed; with auto.leader.rebalance.enable on the controller does
// it by itself.
func TestElectLeaders(t *testing.T) {
	c := brokertest.Start(t, 3, func(_ int, cfg *broker.Config) { cfg.Cluster.LeaderImbalanceCheckInterval = 200 * time.Millisecond })
	adm := c.Admin()
	if res, err := adm.AlterBrokerConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "auto.leader.rebalance.enable", Value: kmsg.StringPtr("false")}}); err != nil || res[0].Err != nil {
		t.Fatalf("%v %v", err, res)
	}
	c.CreateTopic("lead", 1, 3, nil)
	reps := assignment(t, c, 0, "lead")[0]
	leader, _ := c.PartitionInfo("lead", 0)
	if leader != reps[0] {
		t.Fatalf("leader %d, replicas %v: want the first to lead", leader, reps)
	}
	reordered := []int32{reps[1], reps[0], reps[2]}
	reassign(t, adm, "lead", map[int32][]int32{0: reordered})
	testutil.Eventually(t, "the reorder applied", func() bool { return slices.Equal(assignment(t, c, 0, "lead")[0], reordered) })
	if l, _ := c.PartitionInfo("lead", 0); l != reps[0] {
		t.Fatalf("a reorder moved the leader to %d", l)
	}
	res, err := adm.ElectLeaders(ctxT(t), kadm.ElectPreferredReplica, kadm.TopicsSet{"lead": {0: {}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := res["lead"][0]; r.Err != nil {
		t.Fatalf("preferred election: %v", r.Err)
	}
	testutil.Eventually(t, "the preferred replica leading", func() bool { l, _ := c.PartitionInfo("lead", 0); return l == reordered[0] })
	res, err = adm.ElectLeaders(ctxT(t), kadm.ElectPreferredReplica, kadm.TopicsSet{"lead": {0: {}}})
	if err != nil || !errors.Is(res["lead"][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("electing again: %v %v", err, res)
	}
	res, err = adm.ElectLeaders(ctxT(t), kadm.ElectLiveReplica, kadm.TopicsSet{"lead": {0: {}}})
	if err != nil || !errors.Is(res["lead"][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("unclean election of a led partition: %v %v", err, res)
	}
	produceValues(t, c.Client(), "lead", values(20, "e"))

	// Automatic: reorder back and turn balancing on.
	reassign(t, adm, "lead", map[int32][]int32{0: reps})
	testutil.Eventually(t, "the second reorder applied", func() bool { return slices.Equal(assignment(t, c, 0, "lead")[0], reps) })
	if res, err := adm.AlterBrokerConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "auto.leader.rebalance.enable"}}); err != nil || res[0].Err != nil {
		t.Fatalf("%v %v", err, res)
	}
	testutil.Eventually(t, "the controller moving leadership back by itself", func() bool { l, _ := c.PartitionInfo("lead", 0); return l == reps[0] })
	produceValues(t, c.Client(), "lead", values(20, "f"))
	if got := consumeCluster(t, c, "lead", 40); len(got) != 40 {
		t.Fatalf("read %d records, want 40", len(got))
	}
}
