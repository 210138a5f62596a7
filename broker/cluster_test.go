package broker

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/internal/testutil"
)

// testCluster is the in-process cluster harness: N brokers on loopback
// ports, each with its own data dir, which tests kill and restart.
type testCluster struct {
	t       *testing.T
	brokers []*Broker
	cfgs    []Config
}

func freeTCP(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func freeSerf(t *testing.T) string {
	// Serf needs the same port free for TCP and UDP.
	for range 50 {
		addr := freeTCP(t)
		pc, err := net.ListenPacket("udp", addr)
		if err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no free port for serf")
	return ""
}

func startCluster(t *testing.T, n int) *testCluster {
	tc := newCluster(t, n)
	for i := range n {
		tc.startFresh(i)
	}
	tc.waitBrokers(n)
	return tc
}

// newCluster configures n brokers that know each other as peers, without
// starting any.
func newCluster(t *testing.T, n int) *testCluster {
	tc := &testCluster{t: t, brokers: make([]*Broker, n), cfgs: make([]Config, n)}
	serf := make([]string, n)
	for i := range n {
		serf[i] = freeSerf(t)
	}
	for i := range n {
		cfg := DefaultConfig()
		cfg.NodeID = fmt.Sprintf("node-%d", i+1)
		cfg.DataDir = t.TempDir()
		cfg.ListenAddr = freeTCP(t)
		cfg.Logger = discardLogger()
		var peers []string
		for j := range n {
			if j != i {
				peers = append(peers, serf[j])
			}
		}
		cfg.Cluster = &ClusterConfig{SerfAddr: serf[i], RaftAddr: freeTCP(t), Peers: peers, Bootstrap: i == 0,
			ReplicaLagMax: 2 * time.Second, Fast: true}
		tc.cfgs[i] = cfg
	}
	t.Cleanup(func() {
		for _, b := range tc.brokers {
			if b != nil {
				b.Kill()
			}
		}
	})
	return tc
}

// startFresh starts a node for the first time. Ports were found free and
// released, so another process may have taken one meanwhile: then the
// node gets new ones (its peers still find it through the others).
func (tc *testCluster) startFresh(i int) {
	tc.t.Helper()
	for attempt := 0; ; attempt++ {
		b, err := New(tc.cfgs[i])
		if err == nil {
			err = b.Start()
		}
		if err == nil {
			tc.brokers[i] = b
			return
		}
		if attempt == 4 || !strings.Contains(err.Error(), "address already in use") {
			tc.t.Fatal(err)
		}
		tc.cfgs[i].ListenAddr = freeTCP(tc.t)
		tc.cfgs[i].Cluster.SerfAddr = freeSerf(tc.t)
		tc.cfgs[i].Cluster.RaftAddr = freeTCP(tc.t)
	}
}

func (tc *testCluster) start(i int) {
	tc.t.Helper()
	b, err := New(tc.cfgs[i])
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		tc.t.Fatal(err)
	}
	tc.brokers[i] = b
}

// waitBrokers waits until every running broker sees n live brokers and a
// controller.
func (tc *testCluster) waitBrokers(n int) {
	tc.t.Helper()
	testutil.Eventually(tc.t, strconv.Itoa(n)+" live brokers and a controller", func() bool {
		for _, b := range tc.brokers {
			if b == nil {
				continue
			}
			ci := b.Cluster()
			if len(ci.Brokers) != n || ci.ControllerID < 0 {
				return false
			}
		}
		return true
	})
}

func (tc *testCluster) seeds() []string {
	var out []string
	for i, b := range tc.brokers {
		if b != nil {
			out = append(out, tc.cfgs[i].ListenAddr)
		}
	}
	return out
}

func (tc *testCluster) client(opts ...kgo.Opt) *kgo.Client {
	tc.t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(tc.seeds()...), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(cl.Close)
	return cl
}

// ISR of a partition as broker i sees it.
func (tc *testCluster) partitionInfo(topic string, p int32) (leader int32, isr []int32) {
	for _, b := range tc.brokers {
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

func TestClusterReplicatesRF3(t *testing.T) {
	tc := startCluster(t, 3)
	ctx := ctxT(t)
	adm := kadm.NewClient(tc.client())
	if res, err := adm.CreateTopic(ctx, 1, 3, nil, "orders"); err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	testutil.Eventually(t, "a full ISR", func() bool { _, isr := tc.partitionInfo("orders", 0); return len(isr) == 3 })
	cl := tc.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	want := values(200, "o")
	produceValues(t, cl, "orders", want)
	// Every replica ends up with the same records.
	for i, b := range tc.brokers {
		testutil.Eventually(t, fmt.Sprintf("broker %d to have every record", i+1), func() bool {
			b.cl.mu.Lock()
			p := b.cl.parts[partKey{Topic: "orders", Partition: 0}]
			b.cl.mu.Unlock()
			return p != nil && p.LogEndOffset() == int64(len(want)) && p.HighWatermark() == int64(len(want))
		})
	}
	got := consumeCluster(t, tc, "orders", len(want))
	checkRecords(t, got, want)
}

func consumeCluster(t *testing.T, tc *testCluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := tc.client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d", len(out), n)
		}
		out = append(out, fs.Records()...)
	}
	return out
}
