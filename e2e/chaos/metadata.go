//go:build linux

package chaos

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// View is what one node's Metadata answer says about the cluster and a
// topic. Each node is asked on its own (a kgo client seeded with it
// alone, the request sent to that seed), so a partitioned or stale node's
// view is visible as such instead of being hidden behind whichever broker
// a client happened to pick.
type View struct {
	Node       int
	Controller int32
	Brokers    []int32
	Partitions map[int32]PartitionView // empty when the topic is unknown
}

// PartitionView is one partition in a View.
type PartitionView struct {
	Leader, LeaderEpoch int32
	Replicas, ISR       []int32
}

// Metadata asks node i for the cluster and topic (topic may be empty).
// It never creates the topic.
func (c *Cluster) Metadata(i int, topic string) (*View, error) {
	req := kmsg.NewPtrMetadataRequest()
	if topic != "" {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
	} else {
		req.Topics = []kmsg.MetadataRequestTopic{}
	}
	req.AllowAutoTopicCreation = false
	ctx, cancel := ctxTimeout(3 * time.Second)
	defer cancel()
	seeds := c.clients[i-1].SeedBrokers()
	if len(seeds) == 0 {
		return nil, fmt.Errorf("chaos: node %d has no seed broker", i)
	}
	kresp, err := seeds[0].Request(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("chaos: metadata from node %d: %w", i, err)
	}
	resp := kresp.(*kmsg.MetadataResponse)
	v := &View{Node: i, Controller: resp.ControllerID, Partitions: map[int32]PartitionView{}}
	for _, b := range resp.Brokers {
		v.Brokers = append(v.Brokers, b.NodeID)
	}
	slices.Sort(v.Brokers)
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic || kerr.ErrorForCode(t.ErrorCode) != nil {
			continue
		}
		for _, p := range t.Partitions {
			v.Partitions[p.Partition] = PartitionView{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR)}
		}
	}
	return v, nil
}

// CreateTopic creates topic with min.insync.replicas minISR and configs,
// retrying until the cluster accepts it (or it exists).
func (c *Cluster) CreateTopic(topic string, partitions, replicationFactor, minISR int, configs map[string]string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	cfg := map[string]*string{"min.insync.replicas": kmsg.StringPtr(strconv.Itoa(minISR))}
	for k, v := range configs {
		cfg[k] = kmsg.StringPtr(v)
	}
	var last error
	return waitUntil(30*time.Second, func() (bool, error) {
		ctx, cancel := ctxTimeout(5 * time.Second)
		defer cancel()
		r, err := adm.CreateTopic(ctx, int32(partitions), int16(replicationFactor), cfg, topic)
		if err == nil {
			err = r.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			c.logf("created topic %s with %v", topic, configs)
			return true, nil
		}
		last = err
		return false, nil
	}, func() string { return fmt.Sprintf("creating topic %s: %v", topic, last) })
}

// Views asks every running, unpaused node; nodes that do not answer are
// left out.
func (c *Cluster) Views(topic string) []*View {
	var vs []*View
	for i := 1; i <= c.Size(); i++ {
		c.mu.Lock()
		n := c.nodes[i-1]
		up := n.running() && !n.paused && !n.out
		c.mu.Unlock()
		if !up {
			continue
		}
		if v, err := c.Metadata(i, topic); err == nil {
			vs = append(vs, v)
		}
	}
	return vs
}

// Leader is the node leading topic's partition, as the answer with the
// highest leader epoch says.
func (c *Cluster) Leader(topic string, partition int32) (int, error) {
	best, epoch := -1, int32(-1)
	for _, v := range c.Views(topic) {
		p, ok := v.Partitions[partition]
		if ok && p.Leader >= 0 && p.LeaderEpoch > epoch {
			best, epoch = int(p.Leader), p.LeaderEpoch
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("chaos: no leader known for %s-%d: %w", topic, partition, errNoAnswer)
	}
	return best, nil
}

// Controller is the controller (Raft leader) most answering nodes name.
func (c *Cluster) Controller() (int, error) {
	votes := map[int32]int{}
	for _, v := range c.Views("") {
		if v.Controller >= 0 {
			votes[v.Controller]++
		}
	}
	best, n := int32(-1), 0
	for id, k := range votes {
		if k > n || (k == n && id < best) {
			best, n = id, k
		}
	}
	if best < 0 {
		return 0, fmt.Errorf("chaos: no controller known: %w", errNoAnswer)
	}
	return int(best), nil
}

// WaitFormed waits until every node answers, names the same controller and
// lists every broker.
func (c *Cluster) WaitFormed(timeout time.Duration) error {
	var last string
	return waitUntil(timeout, func() (bool, error) {
		ok, why := c.formedNow("")
		last = why
		return ok, nil
	}, func() string { return "the cluster to form: " + last })
}

// WaitSettled waits until every node is up and answers, they agree on the
// controller, and every partition of topic has a leader and a full ISR
// (every replica) in every node's view.
func (c *Cluster) WaitSettled(topic string, timeout time.Duration) error {
	var last string
	return waitUntil(timeout, func() (bool, error) {
		ok, why := c.formedNow(topic)
		last = why
		return ok, nil
	}, func() string { return "the cluster to settle: " + last })
}

// WaitTopic waits until some node knows topic with every partition led.
func (c *Cluster) WaitTopic(topic string, partitions int, timeout time.Duration) error {
	return waitUntil(timeout, func() (bool, error) {
		for _, v := range c.Views(topic) {
			led := 0
			for _, p := range v.Partitions {
				if p.Leader >= 0 {
					led++
				}
			}
			if led >= partitions && led > 0 {
				return true, nil
			}
		}
		return false, nil
	}, func() string { return fmt.Sprintf("topic %s with %d led partitions", topic, partitions) })
}

func (c *Cluster) formedNow(topic string) (bool, string) {
	vs := c.Views(topic)
	members := len(c.Members())
	if len(vs) < members {
		return false, fmt.Sprintf("%d of %d nodes answer", len(vs), members)
	}
	ctrl := vs[0].Controller
	for _, v := range vs {
		if v.Controller < 0 || v.Controller != ctrl {
			return false, describe(vs)
		}
		if len(v.Brokers) < members {
			return false, describe(vs)
		}
		if topic == "" {
			continue
		}
		if len(v.Partitions) == 0 {
			return false, describe(vs)
		}
		for _, p := range v.Partitions {
			if p.Leader < 0 || len(p.ISR) < len(p.Replicas) {
				return false, describe(vs)
			}
		}
	}
	return true, describe(vs)
}

func describe(vs []*View) string {
	var b strings.Builder
	for _, v := range vs {
		fmt.Fprintf(&b, "[node %d: controller %d brokers %v", v.Node, v.Controller, v.Brokers)
		keys := make([]int32, 0, len(v.Partitions))
		for k := range v.Partitions {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			p := v.Partitions[k]
			fmt.Fprintf(&b, " p%d leader %d epoch %d isr %v", k, p.Leader, p.LeaderEpoch, p.ISR)
		}
		b.WriteString("] ")
	}
	return b.String()
}
