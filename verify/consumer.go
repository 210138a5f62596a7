package verify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/notify"
)

// consumer is one plain consumer or group member recording what it polls.
type consumer struct {
	name  string
	group bool
	cl    *kgo.Client
	moved *notify.Notifier // broadcast when a position advances

	mu     sync.Mutex // events, next
	events []ConsumerEvent
	next   map[int32]int64 // partition -> last polled offset + 1
}

// consumers is every consumer of a run.
type consumers struct {
	cfg   *Config
	all   []*consumer
	moved notify.Notifier
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

// startConsumers starts cfg.Consumers plain consumers of every partition
// from the start and cfg.GroupConsumers members of one new group.
func startConsumers(ctx context.Context, cfg *Config, partitions int32, base []kgo.Opt) (*consumers, error) {
	cs := &consumers{cfg: cfg}
	ctx, cs.stop = context.WithCancel(ctx)
	from := map[int32]kgo.Offset{}
	for p := range partitions {
		from[p] = kgo.NewOffset().AtStart()
	}
	for i := range cfg.Consumers {
		c := &consumer{name: fmt.Sprintf("consumer-%d", i), moved: &cs.moved, next: map[int32]int64{}}
		for p := range partitions {
			c.events = append(c.events, ConsumerEvent{Kind: Assigned, Partition: p})
		}
		cl, err := kgo.NewClient(append(slices.Clone(base), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{cfg.Topic: from}))...)
		if err != nil {
			cs.close()
			return nil, err
		}
		c.cl = cl
		cs.all = append(cs.all, c)
	}
	group := "mlog-verify-" + cfg.Topic + "-" + cfg.RunID
	for i := range cfg.GroupConsumers {
		c := &consumer{name: fmt.Sprintf("group-consumer-%d", i), group: true, moved: &cs.moved, next: map[int32]int64{}}
		cl, err := kgo.NewClient(append(slices.Clone(base),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(cfg.Topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.assignment(Assigned, m[cfg.Topic]) }),
			kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.assignment(Revoked, m[cfg.Topic]) }),
			kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { c.assignment(Revoked, m[cfg.Topic]) }),
		)...)
		if err != nil {
			cs.close()
			return nil, err
		}
		c.cl = cl
		cs.all = append(cs.all, c)
	}
	for _, c := range cs.all {
		cs.wg.Go(func() { c.run(ctx, cfg) })
	}
	return cs, nil
}

func (c *consumer) assignment(kind EventKind, parts []int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range slices.Sorted(slices.Values(parts)) {
		c.events = append(c.events, ConsumerEvent{Kind: kind, Partition: p})
	}
}

// run polls until ctx ends. A group member lets rebalances happen only
// between polls, so an assignment event never lands inside a poll's
// records.
func (c *consumer) run(ctx context.Context, cfg *Config) {
	for ctx.Err() == nil {
		fetches := c.cl.PollFetches(ctx)
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				cfg.Logger.Debug("consumer fetch error", "consumer", c.name, "topic", t, "partition", p, "err", err)
			}
		})
		c.mu.Lock()
		fetches.EachRecord(func(r *kgo.Record) {
			c.events = append(c.events, ConsumerEvent{Kind: Record, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
			c.next[r.Partition] = max(c.next[r.Partition], r.Offset+1)
		})
		c.mu.Unlock()
		if fetches.NumRecords() > 0 {
			c.moved.Broadcast()
		}
		if c.group {
			c.cl.AllowRebalance()
		}
	}
}

// caughtUp reports whether the plain consumers, and the group members
// together, have polled every partition up to end (partition -> offset).
func (cs *consumers) caughtUp(end map[int32]int64) bool {
	groupNext := map[int32]int64{}
	for _, c := range cs.all {
		c.mu.Lock()
		next := maps.Clone(c.next)
		c.mu.Unlock()
		if c.group {
			for p, o := range next {
				groupNext[p] = max(groupNext[p], o)
			}
			continue
		}
		for p, e := range end {
			if next[p] < e {
				return false
			}
		}
	}
	if cs.cfg.GroupConsumers > 0 {
		for p, e := range end {
			if groupNext[p] < e {
				return false
			}
		}
	}
	return true
}

// drain waits until the consumers caught up with end, or ctx ends.
func (cs *consumers) drain(ctx context.Context, end map[int32]int64) bool {
	for {
		moved := cs.moved.Wait() // before checking: no lost wakeup
		if cs.caughtUp(end) {
			return true
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return false
		}
	}
}

// close stops every consumer, waits for them and returns their logs.
func (cs *consumers) close() []ConsumerLog {
	cs.stop()
	cs.wg.Wait()
	var logs []ConsumerLog
	for _, c := range cs.all {
		c.cl.Close() // a group member leaves the group (and records its revocation)
		c.mu.Lock()
		logs = append(logs, ConsumerLog{Name: c.name, Group: c.group, Events: slices.Clone(c.events)})
		c.mu.Unlock()
	}
	return logs
}
