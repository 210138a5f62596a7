package broker_test

// Helpers every broker test shares. Brokers come from brokertest: a
// broker alone is a one-node cluster, the same code path `mlog server`
// runs.

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// startOne starts a one-node cluster and returns it with its broker, once
// that serves: elected, its metadata replayed, registered.
func startOne(t testing.TB, opts ...brokertest.Option) (*brokertest.Cluster, *broker.Broker) {
	t.Helper()
	c := brokertest.Start(t, 1, opts...)
	waitServing(c)
	return c, c.Brokers[0]
}

// restart closes broker i gracefully and starts it again on its data,
// then waits until it serves.
func restart(c *brokertest.Cluster, i int) *broker.Broker {
	c.T.Helper()
	c.Stop(i)
	c.StartNode(i)
	waitServing(c)
	return c.Brokers[i]
}

// waitServing waits until every running broker sees all the running
// brokers and a controller, has replayed its metadata and is registered
// in its current incarnation (before that it opens no replica), and every
// partition it knows is led by a running broker that serves it as leader.
func waitServing(c *brokertest.Cluster) {
	c.T.Helper()
	n := 0
	for _, b := range c.Brokers {
		if b != nil {
			n++
		}
	}
	c.WaitBrokers(n)
	testutil.Eventually(c.T, "every broker ready and registered", func() bool {
		for _, b := range c.Brokers {
			if b != nil && (!b.Ready() || !broker.Registered(b)) {
				return false
			}
		}
		return true
	})
	testutil.Eventually(c.T, "every partition served by its leader", func() bool {
		for _, b := range c.Brokers {
			if b == nil {
				continue
			}
			for _, ti := range b.Topics() {
				for _, p := range ti.Partitions {
					li := c.Index(p.Leader)
					if li < 0 || c.Brokers[li] == nil {
						return false
					}
					if r := broker.Replica(c.Brokers[li], ti.Name, p.ID); r == nil || r.CheckLeader(-1) != nil {
						return false
					}
				}
			}
		}
		return true
	})
}

// waitLeading waits until b leads every partition of topic.
func waitLeading(t testing.TB, b *broker.Broker, topic string) {
	t.Helper()
	testutil.Eventually(t, "broker leading every partition of "+topic, func() bool {
		ti, err := b.Topic(topic)
		if err != nil || len(ti.Partitions) == 0 {
			return false
		}
		for _, pi := range ti.Partitions {
			p := broker.Replica(b, topic, pi.ID)
			if p == nil || p.CheckLeader(-1) != nil {
				return false
			}
		}
		return true
	})
}

// replica is broker i's replica of a partition, nil while it has none.
func replica(c *brokertest.Cluster, i int, topic string, p int32) *partition.Partition {
	return broker.Replica(c.Brokers[i], topic, p)
}

func client(t testing.TB, b *broker.Broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr().String())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func admin(t testing.TB, b *broker.Broker) *kadm.Client {
	return kadm.NewClient(client(t, b))
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// produceValues produces values to topic partition 0 in order and waits for
// every ack.
func produceValues(t *testing.T, cl *kgo.Client, topic string, values []string) {
	t.Helper()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
	}
	if err := cl.ProduceSync(ctxT(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// consumeAll reads n records of topic from the start through broker b.
func consumeAll(t *testing.T, b *broker.Broker, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := client(t, b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx := ctxT(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d: %v", len(out), n, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch: %v", errs[0].Err)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// consumeCluster reads n records of topic from the start through every
// running broker of c.
func consumeCluster(t *testing.T, c *brokertest.Cluster, topic string, n int) []*kgo.Record {
	t.Helper()
	cl := c.Client(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
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

func values(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

func checkRecords(t *testing.T, got []*kgo.Record, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i, r := range got {
		if string(r.Value) != want[i] || r.Offset != int64(i) {
			t.Fatalf("record %d: offset %d value %q, want offset %d value %q", i, r.Offset, r.Value, i, want[i])
		}
	}
}

func hasConfig(cs []kadm.Config, name, value string) bool {
	for _, c := range cs {
		if c.Key == name && c.Value != nil && *c.Value == value {
			return true
		}
	}
	return false
}

// sameLogs checks that every running replica holds the same bytes below
// the high watermark (brokers holding no replica of it are passed over).
func sameLogs(t *testing.T, c *brokertest.Cluster, topic string, p int32) {
	t.Helper()
	var want []byte
	var hw int64 = -1
	for i, b := range c.Brokers {
		if b == nil || replica(c, i, topic, p) == nil {
			continue
		}
		r := replica(c, i, topic, p)
		if hw < 0 || r.HighWatermark() < hw {
			hw = r.HighWatermark()
		}
	}
	for i, b := range c.Brokers {
		if b == nil || replica(c, i, topic, p) == nil {
			continue
		}
		reg, err := replica(c, i, topic, p).Log().Read(0, 1<<30, hw)
		if err != nil {
			t.Fatal(err)
		}
		got, err := reg.Bytes()
		reg.Release()
		if err != nil {
			t.Fatal(err)
		}
		if want == nil {
			want = got
		} else if !bytes.Equal(got, want) {
			t.Fatalf("broker %d's log below the high watermark %d differs from the others'", i+1, hw)
		}
	}
}

// metricValue reads one sample from a broker's registry; labels are name,
// value pairs the sample must carry. ok is false when there is none.
func metricValue(t *testing.T, b *broker.Broker, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := broker.Metrics(b).Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	sample:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue sample
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// rawConn speaks the protocol by hand, to pin versions and send bad bytes.
type rawConn struct {
	t        testing.TB
	nc       net.Conn
	corr     int32
	clientID string // "test" when empty
}

func dialRaw(t testing.TB, b *broker.Broker) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", b.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

// send writes req at its set version and returns the decoded response.
func (c *rawConn) send(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	c.corr++
	var b []byte
	b = append(b, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	id := c.clientID
	if id == "" {
		id = "test"
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(id)))
	b = append(b, id...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
	body := c.readFrame()
	if got := int32(binary.BigEndian.Uint32(body)); got != c.corr {
		c.t.Fatalf("correlation id %d, want %d", got, c.corr)
	}
	body = body[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if resp.IsFlexible() && req.Key() != 18 {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decode %T v%d: %v", resp, req.GetVersion(), err)
	}
	return resp
}

// sendRaw frames a request body by hand and returns the response body
// after the correlation id.
func (c *rawConn) sendRaw(key, version int16, body []byte) []byte {
	c.t.Helper()
	c.corr++
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(c.corr))
	b = binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
	return c.readFrame()[4:]
}

func (c *rawConn) readFrame() []byte {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(c.nc, size[:]); err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.nc, body); err != nil {
		c.t.Fatalf("read response body: %v", err)
	}
	return body
}

// closedByPeer reports whether the broker closed the connection.
func (c *rawConn) closedByPeer() bool {
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := c.nc.Read(b[:])
	return err != nil
}

// frameRequest frames req with a null client id, for writing by hand.
func frameRequest(req kmsg.Request, corr int32) []byte {
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 0xffff)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// fetchRequest is a consumer's fetch. Like every raw request here it sends
// leader epoch -1 (no check), as a client that does not track epochs does:
// a partition's first leader epoch is 1.
func fetchRequest(topic string, partition int32, offset int64, waitMs, minBytes int32) *kmsg.FetchRequest {
	fr := kmsg.NewPtrFetchRequest()
	fr.Version, fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 11, -1, waitMs, minBytes, 50<<20
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{Partition: partition, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, FetchOffset: offset, PartitionMaxBytes: 50 << 20}}}}
	return fr
}

func idempotentBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	var vs [][]byte
	for _, v := range values {
		vs = append(vs, []byte(v))
	}
	return batchtest.Build(batchtest.Spec{Values: vs, Timestamp: 1_700_000_000_000, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
}

// produceRawOnce produces records to partition 0 of topic with acks=all
// and returns the answer.
func produceRawOnce(c *rawConn, topic string, records []byte) kmsg.ProduceResponseTopicPartition {
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 9, -1, 5000
	pr.Topics = []kmsg.ProduceRequestTopic{{Topic: topic, Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
	return c.send(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

// produceRaw is produceRawOnce repeated while the partition has no leader
// here yet: a topic just created, or auto-created by this very produce,
// is served once the broker has opened its replica as leader, and until
// then the answer is a retriable error with nothing written.
func produceRaw(c *rawConn, topic string, records []byte) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	var p kmsg.ProduceResponseTopicPartition
	testutil.Eventually(c.t, "a leader for "+topic+"-0", func() bool {
		p = produceRawOnce(c, topic, records)
		return !notLedYet(p.ErrorCode)
	})
	return p
}

// notLedYet reports whether code is what a partition answers before its
// leader serves it.
func notLedYet(code int16) bool {
	return code == kerr.NotLeaderForPartition.Code || code == kerr.LeaderNotAvailable.Code
}
