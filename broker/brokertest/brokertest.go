// Package brokertest runs real mlog brokers inside a test: an in-process
// cluster of N brokers on loopback port-0 listeners (Kafka, Serf and Raft
// all real), each with its own data directory, which a test kills,
// restarts and wipes. A broker alone is a one-node cluster: the same code
// path `mlog server` runs.
package brokertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/internal/testutil"
)

// Option adjusts broker i's config before its first start.
type Option func(i int, cfg *broker.Config)

// Cluster is N brokers in this process. Brokers[i] is nil while broker i
// is stopped; Configs[i] is what it (re)starts with, its addresses pinned
// to the ports its first start took.
type Cluster struct {
	T       testing.TB
	Brokers []*broker.Broker
	Configs []broker.Config
	// ClientOpts go into every client Client makes (TLS, for one).
	ClientOpts []kgo.Opt
	started    []bool
}

// Logger writes a broker's logs to the test log at info level.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// Start starts n brokers and waits until each sees all n and a controller.
func Start(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := New(t, n, opts...)
	for i := range n {
		c.StartNode(i)
	}
	c.WaitBrokers(n)
	return c
}

// New configures n brokers without starting any. Broker 0 bootstraps the
// cluster; the others join the brokers started before them. Every broker
// is killed when the test ends.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	c := &Cluster{T: t, Brokers: make([]*broker.Broker, n), Configs: make([]broker.Config, n), started: make([]bool, n)}
	for i := range n {
		cfg := broker.DefaultConfig()
		cfg.NodeID = fmt.Sprintf("node-%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.ShutdownGrace = time.Second
		cfg.Cluster.SerfAddr = "127.0.0.1:0"
		cfg.Cluster.RaftAddr = "127.0.0.1:0"
		cfg.Cluster.Bootstrap = i == 0
		cfg.Cluster.Network = broker.NetworkLocal
		cfg.Cluster.ReplicaLagMax = 2 * time.Second
		// What `mlog server` takes with every other node named as a peer;
		// here a broker's peers are only those started before it, so
		// broker 0 would otherwise make __consumer_offsets with one replica.
		cfg.OffsetsReplicationFactor = int16(min(3, n))
		if n == 1 {
			cfg.Logger = Logger(t)
		}
		for _, o := range opts {
			o(i, &cfg)
		}
		c.Configs[i] = cfg
	}
	t.Cleanup(func() {
		for _, b := range c.Brokers {
			if b != nil {
				_ = b.Kill()
			}
		}
	})
	return c
}

// StartNode starts broker i (again). Its peers are every broker started
// before; on its first start its port-0 addresses are pinned to the ports
// taken, so a restart comes back where the cluster knows it.
func (c *Cluster) StartNode(i int) {
	c.T.Helper()
	if err := c.TryStart(i); err != nil {
		c.T.Fatalf("start broker %d: %v", i, err)
	}
}

// TryStart is StartNode returning the error.
func (c *Cluster) TryStart(i int) error {
	cfg := c.Configs[i]
	cfg.Cluster.Peers = nil
	for j := range c.Configs {
		if j != i && c.started[j] {
			cfg.Cluster.Peers = append(cfg.Cluster.Peers, c.Configs[j].Cluster.SerfAddr)
		}
	}
	var b *broker.Broker
	var err error
	// A restart reuses its ports; a port freed by a killed broker may
	// still be held for a moment, or taken by another test process.
	for attempt := 0; attempt < 20; attempt++ {
		if b, err = broker.New(cfg); err == nil {
			if err = b.Start(); err == nil {
				break
			}
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		timer := time.NewTimer(100 * time.Millisecond) // back off before retrying the bind
		<-timer.C
	}
	if err != nil {
		return err
	}
	c.Brokers[i] = b
	if !c.started[i] {
		c.Configs[i].ListenAddr = b.Addr().String()
		ls := slices.Clone(c.Configs[i].Listeners)
		for j := range ls {
			ls[j].Addr = b.ListenerAddr(ls[j].Name).String()
		}
		c.Configs[i].Listeners = ls
		c.Configs[i].Cluster.SerfAddr = b.SerfAddr()
		c.Configs[i].Cluster.RaftAddr = b.RaftAddr()
		c.started[i] = true
	}
	return nil
}

// Kill stops broker i as a crash looks to the others: no controlled
// shutdown, no Serf leave.
func (c *Cluster) Kill(i int) {
	if b := c.Brokers[i]; b != nil {
		_ = b.Kill()
		c.Brokers[i] = nil
	}
}

// Stop closes broker i gracefully (controlled shutdown, Serf leave).
func (c *Cluster) Stop(i int) {
	c.T.Helper()
	if b := c.Brokers[i]; b != nil {
		if err := b.Close(); err != nil {
			c.T.Errorf("close broker %d: %v", i, err)
		}
		c.Brokers[i] = nil
	}
}

// Restart kills broker i and starts it again on the same data.
func (c *Cluster) Restart(i int) {
	c.T.Helper()
	c.Kill(i)
	c.StartNode(i)
}

// Wipe deletes a stopped broker's data directory: it restarts empty.
func (c *Cluster) Wipe(i int) {
	c.T.Helper()
	if c.Brokers[i] != nil {
		c.T.Fatalf("wipe broker %d: still running", i)
	}
	if err := os.RemoveAll(c.Configs[i].DataDir); err != nil {
		c.T.Fatal(err)
	}
}

// Index returns the index of the broker with Kafka id, or -1.
func (c *Cluster) Index(id int32) int {
	for i, cfg := range c.Configs {
		if broker.KafkaNodeID(cfg.NodeID) == id {
			return i
		}
	}
	return -1
}

// Seeds lists the Kafka addresses of the running brokers.
func (c *Cluster) Seeds() []string {
	var out []string
	for i, b := range c.Brokers {
		if b != nil {
			out = append(out, c.Configs[i].ListenAddr)
		}
	}
	return out
}

// Client is a franz-go client seeded with every running broker, closed
// when the test ends.
func (c *Cluster) Client(opts ...kgo.Opt) *kgo.Client {
	c.T.Helper()
	base := []kgo.Opt{kgo.SeedBrokers(c.Seeds()...), kgo.MetadataMinAge(100 * time.Millisecond)}
	cl, err := kgo.NewClient(append(append(base, c.ClientOpts...), opts...)...)
	if err != nil {
		c.T.Fatal(err)
	}
	c.T.Cleanup(cl.Close)
	return cl
}

// Admin is a kadm client over Client.
func (c *Cluster) Admin() *kadm.Client { return kadm.NewClient(c.Client()) }

// WaitBrokers waits until every running broker is ready (its metadata
// caught up), sees n live brokers and the same registered controller.
func (c *Cluster) WaitBrokers(n int) {
	c.T.Helper()
	testutil.Eventually(c.T, fmt.Sprintf("%d live brokers and a controller", n), func() bool {
		ctrl := int32(-1)
		for _, b := range c.Brokers {
			if b == nil {
				continue
			}
			id, ok := b.Controller()
			if !ok || !b.Ready() || len(b.Cluster("").Brokers) != n || (ctrl >= 0 && id != ctrl) {
				return false
			}
			ctrl = id
		}
		return true
	})
}

// PartitionInfo is a partition's leader and ISR as the first running
// broker that knows the topic sees them; leader -1 when none does.
func (c *Cluster) PartitionInfo(topic string, p int32) (leader int32, isr []int32) {
	for _, b := range c.Brokers {
		if b == nil {
			continue
		}
		ti, err := b.Topic(topic)
		if err != nil || int(p) >= len(ti.Partitions) {
			continue
		}
		return ti.Partitions[p].Leader, ti.Partitions[p].ISR
	}
	return -1, nil
}

// CreateTopic creates a topic through Kafka's CreateTopics and waits until
// every running broker knows it with a full ISR.
func (c *Cluster) CreateTopic(topic string, partitions int32, rf int16, configs map[string]*string) {
	c.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.Admin().CreateTopic(ctx, partitions, rf, configs, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		c.T.Fatalf("create topic %s: %v", topic, err)
	}
	testutil.Eventually(c.T, "topic "+topic+" on every broker with a full ISR", func() bool {
		for _, b := range c.Brokers {
			if b == nil {
				continue
			}
			ti, err := b.Topic(topic)
			if err != nil || len(ti.Partitions) != int(partitions) {
				return false
			}
			for _, p := range ti.Partitions {
				if len(p.ISR) != int(rf) || p.Leader < 0 {
					return false
				}
			}
		}
		return true
	})
}
