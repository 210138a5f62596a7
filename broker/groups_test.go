package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// A simple consumer commits offsets with a group id and no membership (the
// the --id consumer) and fetches them back, also after a restart.
func TestSimpleCommitAndFetchOffsets(t *testing.T) {
	c, b := startOne(t)
	produceValues(t, client(t, b, kgo.AllowAutoTopicCreation()), "orders", values(10, "v"))
	adm := admin(t, b)
	ctx := ctxT(t)
	offsets := kadm.Offsets{}
	offsets.AddOffset("orders", 0, 7, -1)
	resp, err := adm.CommitOffsets(ctx, "my-consumer", offsets)
	if err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v %v", err, resp.Error())
	}
	check := func(adm *kadm.Client) {
		t.Helper()
		got, err := adm.FetchOffsets(ctxT(t), "my-consumer")
		if err != nil {
			t.Fatal(err)
		}
		o, ok := got.Lookup("orders", 0)
		if !ok || o.Err != nil || o.At != 7 {
			t.Fatalf("fetched %+v (found %v), want offset 7", o, ok)
		}
	}
	check(adm)
	b = restart(c, 0)
	check(admin(t, b))
}

// consumeGroup runs a group member until stop, collecting what it reads
// (committing as it goes).
type groupMember struct {
	cl       *kgo.Client
	mu       sync.Mutex
	seen     []string // every record polled
	uncommit []string // polled, but its commit failed (may be read again)
	done     chan struct{}
}

func startMember(t *testing.T, seeds []string, groupName, topic string) *groupMember {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumerGroup(groupName), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.SessionTimeout(6*time.Second),
		kgo.HeartbeatInterval(500*time.Millisecond), kgo.MetadataMinAge(200*time.Millisecond), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	m := &groupMember{cl: cl, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			var recs []*kgo.Record
			fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
			if len(recs) == 0 {
				continue
			}
			err := cl.CommitRecords(context.Background(), recs...)
			m.mu.Lock()
			for _, r := range recs {
				m.seen = append(m.seen, string(r.Value))
				if err != nil {
					m.uncommit = append(m.uncommit, string(r.Value))
				}
			}
			m.mu.Unlock()
		}
	}()
	return m
}

func (m *groupMember) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.seen)
}

func (m *groupMember) stop() {
	m.cl.Close() // leaves the group
	<-m.done
}

// Three members share a 6-partition topic: every record is consumed exactly
// once between them (with commits), through a member leaving and a new one
// joining.
func TestGroupConsumersShareTopic(t *testing.T) {
	_, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.GroupInitialRebalanceDelay = 100 * time.Millisecond })
	adm := admin(t, b)
	if _, err := adm.CreateTopic(ctxT(t), 6, 1, nil, "shared"); err != nil {
		t.Fatal(err)
	}
	seeds := []string{b.Addr().String()}
	members := []*groupMember{startMember(t, seeds, "g", "shared"), startMember(t, seeds, "g", "shared"), startMember(t, seeds, "g", "shared")}
	prod := client(t, b, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0))
	total := 0
	produce := func(n int) {
		var recs []*kgo.Record
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: "shared", Value: []byte(fmt.Sprintf("r%04d", total+i))})
		}
		if err := prod.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		total += n
	}
	sum := func() int {
		n := 0
		for _, m := range members {
			n += m.count()
		}
		return n
	}
	produce(300)
	testutil.Eventually(t, "the first 300 consumed", func() bool { return sum() >= 300 })
	members[0].stop() // leaves: the others take its partitions
	produce(300)
	testutil.Eventually(t, "600 consumed after a member left", func() bool { return sum() >= 600 })
	members = append(members, startMember(t, seeds, "g", "shared")) // joins
	produce(300)
	testutil.Eventually(t, "900 consumed after a member joined", func() bool { return sum() >= 900 })
	for _, m := range members[1:] {
		m.stop()
	}
	// Every record was read; a record was read twice only if its first
	// reader's commit failed (a rebalance got in between), which is the
	// at-least-once Kafka promises around a rebalance.
	count := map[string]int{}
	mayRepeat := map[string]bool{}
	for _, m := range members {
		for _, v := range m.seen {
			count[v]++
		}
		for _, v := range m.uncommit {
			mayRepeat[v] = true
		}
	}
	for i := range total {
		v := fmt.Sprintf("r%04d", i)
		if count[v] == 0 {
			t.Fatalf("record %s never consumed", v)
		}
		if count[v] > 1 && !mayRepeat[v] {
			t.Fatalf("record %s consumed %d times although its commit succeeded", v, count[v])
		}
	}
	if len(count) != total {
		t.Fatalf("%d distinct records consumed, %d produced", len(count), total)
	}
	groups, err := adm.DescribeGroups(ctxT(t), "g")
	if err != nil {
		t.Fatal(err)
	}
	if g := groups["g"]; g.State != "Empty" || len(g.Members) != 0 {
		t.Fatalf("group after every member left: %s with %d members", g.State, len(g.Members))
	}
}

// Kill the coordinator of a group mid-consumption: committed offsets
// survive on the new coordinator, the group re-forms, and consumption
// resumes without re-reading committed records.
func TestGroupCoordinatorKilled(t *testing.T) {
	c := brokertest.Start(t, 3)
	c.CreateTopic("work", 3, 3, nil)
	prod := c.Client(kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()))
	produce := func(from, n int) {
		var recs []*kgo.Record
		for i := from; i < from+n; i++ {
			recs = append(recs, &kgo.Record{Topic: "work", Value: []byte(fmt.Sprintf("w%04d", i))})
		}
		if err := prod.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0, 300)
	m := startMember(t, c.Seeds(), "workers", "work")
	testutil.Eventually(t, "the first 300 consumed and committed", func() bool { return m.count() >= 300 })
	m.stop()
	coord := c.Admin().FindGroupCoordinators(ctxT(t), "workers")
	var leader int32 = -1
	coord.Each(func(c kadm.FindCoordinatorResponse) {
		if c.Err == nil {
			leader = c.NodeID
		}
	})
	ci := c.Index(leader)
	if ci < 0 {
		t.Fatalf("coordinator %d not found", leader)
	}
	start := time.Now()
	c.Kill(ci)
	produce(300, 100)
	t.Logf("produced after the kill in %v", time.Since(start))
	m2 := startMember(t, c.Seeds(), "workers", "work")
	testutil.Eventually(t, "the 100 new records consumed", func() bool { return m2.count() >= 100 })
	t.Logf("consumed after the kill in %v", time.Since(start))
	m2.stop()
	for _, v := range m2.seen {
		var i int
		fmt.Sscanf(v, "w%04d", &i)
		if i < 300 {
			t.Fatalf("record %s re-read after the coordinator moved: committed offsets lost", v)
		}
	}
	if len(m2.seen) != 100 {
		t.Fatalf("read %d records after the coordinator moved, want 100", len(m2.seen))
	}
}

// mlog's consumer commits after every record. __consumer_offsets is
// compacted, so its size stays bounded however long that goes on, and the
// latest commit survives compaction and a restart.
func TestOffsetsTopicStaysBounded(t *testing.T) {
	const segmentBytes = 16 << 10
	c, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.OffsetsSegmentBytes = segmentBytes; cfg.OffsetsPartitions = 1 })
	produceValues(t, client(t, b, kgo.AllowAutoTopicCreation()), "orders", values(1, "v"))
	adm := admin(t, b)
	ctx := ctxT(t)
	commit := func(at int64) {
		o := kadm.Offsets{}
		o.AddOffset("orders", 0, at, -1)
		resp, err := adm.CommitOffsets(ctx, "my-consumer", o)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			t.Fatalf("commit %d: %v", at, err)
		}
	}
	const perRound = 1500
	var sizes []int64
	for round := range 3 {
		for i := range perRound {
			commit(int64(round*perRound + i + 1))
		}
		p, err := b.Partition("__consumer_offsets", 0)
		if err != nil {
			t.Fatal(err)
		}
		before := p.Log().Size()
		b.RunRetention()
		sizes = append(sizes, p.Log().Size())
		// Written: ~perRound records of ~100 bytes a round. Kept: the
		// active segment and one record.
		if after := p.Log().Size(); after > 2*segmentBytes || after >= before {
			t.Fatalf("round %d: offsets partition %d bytes before compaction, %d after", round, before, after)
		}
		if n := p.Log().NumSegments(); n > 3 {
			t.Fatalf("round %d: %d segments after compaction", round, n)
		}
	}
	t.Logf("offsets partition size after each round: %v", sizes)
	check := func(adm *kadm.Client) {
		t.Helper()
		got, err := adm.FetchOffsets(ctxT(t), "my-consumer")
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := got.Lookup("orders", 0); !ok || o.Err != nil || o.At != 3*perRound {
			t.Fatalf("fetched %+v, want %d", o, 3*perRound)
		}
	}
	check(adm)
	b = restart(c, 0)
	check(admin(t, b))
}

// A static member (group.instance.id) that restarts while its group is
// stable takes its old place and partitions without a rebalance: the other
// member keeps its partitions throughout (KIP-345).
func TestStaticMemberRestartsWithoutRebalance(t *testing.T) {
	_, b := startOne(t)
	adm := admin(t, b)
	if res, err := adm.CreateTopic(ctxT(t), 4, 1, nil, "static"); err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	type member struct {
		cl       *kgo.Client
		mu       sync.Mutex
		assigned []int32
		revokes  int
		done     chan struct{}
	}
	start := func(instance string) *member {
		m := &member{done: make(chan struct{})}
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr().String()), kgo.ConsumerGroup("static-g"), kgo.ConsumeTopics("static"),
			kgo.InstanceID(instance), kgo.Balancers(kgo.RangeBalancer()), kgo.SessionTimeout(30*time.Second),
			kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
				m.mu.Lock()
				m.assigned = append(m.assigned[:0], a["static"]...)
				m.mu.Unlock()
			}),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
				m.mu.Lock()
				if len(r["static"]) > 0 {
					m.revokes++
				}
				m.mu.Unlock()
			}))
		if err != nil {
			t.Fatal(err)
		}
		m.cl = cl
		go func() {
			defer close(m.done)
			for !cl.PollFetches(context.Background()).IsClientClosed() {
			}
		}()
		return m
	}
	stop := func(m *member) { m.cl.Close(); <-m.done }
	state := func(m *member) (int, int) {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.assigned), m.revokes
	}

	leader := start("leader")
	defer stop(leader)
	testutil.Eventually(t, "the first member to own all four partitions", func() bool { n, _ := state(leader); return n == 4 })
	other := start("other")
	testutil.Eventually(t, "two members with two partitions each", func() bool {
		n1, _ := state(leader)
		n2, _ := state(other)
		return n1 == 2 && n2 == 2
	})
	_, revokesBefore := state(leader)

	stop(other) // a static member does not leave the group on close
	again := start("other")
	defer stop(again)
	testutil.Eventually(t, "the restarted static member to get its partitions back", func() bool { n, _ := state(again); return n == 2 })
	if n, revokes := state(leader); n != 2 || revokes != revokesBefore {
		t.Fatalf("the other member was rebalanced: %d partitions, %d revocations (was %d)", n, revokes, revokesBefore)
	}
	groups, err := adm.DescribeGroups(ctxT(t), "static-g")
	if err != nil {
		t.Fatal(err)
	}
	g := groups["static-g"]
	if g.State != "Stable" || len(g.Members) != 2 {
		t.Fatalf("group after the restart: state %s, %d members", g.State, len(g.Members))
	}
}

// DeleteGroups and OffsetDelete: committed offsets go, and only from groups
// without members.
func TestDeleteGroupsAndOffsets(t *testing.T) {
	_, b := startOne(t)
	produceValues(t, client(t, b, kgo.AllowAutoTopicCreation()), "orders", values(3, "v"))
	adm := admin(t, b)
	ctx := ctxT(t)
	commit := func(group string) {
		t.Helper()
		o := kadm.Offsets{}
		o.AddOffset("orders", 0, 2, -1)
		if resp, err := adm.CommitOffsets(ctx, group, o); err != nil || resp.Error() != nil {
			t.Fatalf("commit: %v %v", err, resp.Error())
		}
	}
	committed := func(group string) bool {
		t.Helper()
		got, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		o, ok := got.Lookup("orders", 0)
		return ok && o.Err == nil && o.At >= 0
	}

	commit("del")
	resp, err := adm.DeleteOffsets(ctx, "del", kadm.TopicsSet{"orders": {0: {}}})
	if err != nil || resp.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, resp.Error())
	}
	if committed("del") {
		t.Fatal("offset still committed after OffsetDelete")
	}
	commit("del")
	dr, err := adm.DeleteGroups(ctx, "del", "never-existed")
	if err != nil {
		t.Fatal(err)
	}
	if dr["del"].Err != nil || !errors.Is(dr["never-existed"].Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete groups: del=%v never-existed=%v", dr["del"].Err, dr["never-existed"].Err)
	}
	if committed("del") {
		t.Fatal("offset still committed after DeleteGroups")
	}

	m := startMember(t, []string{b.Addr().String()}, "busy", "orders")
	defer m.stop()
	testutil.Eventually(t, "the member to consume", func() bool { return m.count() == 3 })
	if dr, err := adm.DeleteGroups(ctx, "busy"); err != nil || !errors.Is(dr["busy"].Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete a group with a member: %v %v, want NON_EMPTY_GROUP", err, dr["busy"].Err)
	}
	if resp, err := adm.DeleteOffsets(ctx, "busy", kadm.TopicsSet{"orders": {0: {}}}); err == nil && resp.Error() == nil {
		t.Fatal("deleted the offsets of a group that consumes the topic")
	}
}
