package verify

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// fakeBroker answers just enough of the Kafka protocol for readReplicas:
// ApiVersions, Metadata (topic "t", partition 0, leader 1, replicas 1 and
// 2) and Fetch. It stands in for a cluster that does not serve follower
// reads, which mlog's own brokers may or may not do.
type fakeBroker struct {
	t    *testing.T
	id   int32
	ln   net.Listener
	peer *fakeBroker
	// fetch answers one partition's fetch.
	fetch func(rp *kmsg.FetchRequestTopicPartition) kmsg.FetchResponseTopicPartition

	mu      sync.Mutex
	fetches []*kmsg.FetchRequest
	wg      sync.WaitGroup
}

func startFake(t *testing.T, id int32) *fakeBroker {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBroker{t: t, id: id, ln: ln}
	fb.wg.Go(fb.serve)
	t.Cleanup(func() { ln.Close(); fb.wg.Wait() })
	return fb
}

func (fb *fakeBroker) serve() {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for {
		c, err := fb.ln.Accept()
		if err != nil {
			return
		}
		conns = append(conns, c)
		fb.wg.Go(func() { fb.handle(c) })
	}
}

func (fb *fakeBroker) handle(c net.Conn) {
	defer c.Close()
	for {
		var size [4]byte
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		buf := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		key, version := int16(binary.BigEndian.Uint16(buf)), int16(binary.BigEndian.Uint16(buf[2:]))
		corr := buf[4:8]
		clientIDLen := int16(binary.BigEndian.Uint16(buf[8:]))
		body := buf[10+max(int(clientIDLen), 0):]
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		if req.IsFlexible() {
			body = body[1:] // the header's tagged fields: kgo sends none
		}
		if err := req.ReadFrom(body); err != nil {
			fb.t.Errorf("fake broker %d: decode key %d v%d: %v", fb.id, key, version, err)
			return
		}
		resp := fb.answer(req)
		out := append([]byte{0, 0, 0, 0}, corr...)
		if resp.IsFlexible() && key != 18 { // ApiVersions keeps the old response header
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

func (fb *fakeBroker) answer(req kmsg.Request) kmsg.Response {
	switch req := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		for _, k := range [][3]int16{{18, 0, 3}, {3, 0, 9}, {1, 4, 12}} {
			ak := kmsg.NewApiVersionsResponseApiKey()
			ak.ApiKey, ak.MinVersion, ak.MaxVersion = k[0], k[1], k[2]
			resp.ApiKeys = append(resp.ApiKeys, ak)
		}
		return resp
	case *kmsg.MetadataRequest:
		resp := req.ResponseKind().(*kmsg.MetadataResponse)
		for _, b := range []*fakeBroker{fb, fb.peer} {
			mb := kmsg.NewMetadataResponseBroker()
			host, port, _ := net.SplitHostPort(b.ln.Addr().String())
			p, _ := strconv.Atoi(port)
			mb.NodeID, mb.Host, mb.Port = b.id, host, int32(p)
			resp.Brokers = append(resp.Brokers, mb)
		}
		resp.ControllerID = 1
		mt := kmsg.NewMetadataResponseTopic()
		name := "t"
		mt.Topic = &name
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition, mp.Leader, mp.Replicas, mp.ISR = 0, 1, []int32{1, 2}, []int32{1, 2}
		mt.Partitions = append(mt.Partitions, mp)
		resp.Topics = append(resp.Topics, mt)
		return resp
	case *kmsg.FetchRequest:
		fb.mu.Lock()
		fb.fetches = append(fb.fetches, req)
		fb.mu.Unlock()
		resp := req.ResponseKind().(*kmsg.FetchResponse)
		for _, rt := range req.Topics {
			ft := kmsg.NewFetchResponseTopic()
			ft.Topic = rt.Topic
			for i := range rt.Partitions {
				ft.Partitions = append(ft.Partitions, fb.fetch(&rt.Partitions[i]))
			}
			resp.Topics = append(resp.Topics, ft)
		}
		return resp
	}
	fb.t.Errorf("fake broker %d: unexpected request key %d", fb.id, req.Key())
	return req.ResponseKind()
}

// emptyLeader answers as a leader of an empty partition.
func emptyLeader(rp *kmsg.FetchRequestTopicPartition) kmsg.FetchResponseTopicPartition {
	p := kmsg.NewFetchResponseTopicPartition()
	p.Partition = rp.Partition
	p.HighWatermark, p.LastStableOffset, p.LogStartOffset = 0, 0, 0
	return p
}

// notLeader answers as a follower that does not serve follower reads.
func notLeader(rp *kmsg.FetchRequestTopicPartition) kmsg.FetchResponseTopicPartition {
	p := kmsg.NewFetchResponseTopicPartition()
	p.Partition = rp.Partition
	p.ErrorCode = kerr.NotLeaderForPartition.Code
	p.HighWatermark, p.LastStableOffset, p.LogStartOffset = -1, -1, -1
	return p
}

func fakeCluster(t *testing.T, follower func(*kmsg.FetchRequestTopicPartition) kmsg.FetchResponseTopicPartition) (*kgo.Client, *fakeBroker, *fakeBroker) {
	leader, other := startFake(t, 1), startFake(t, 2)
	leader.peer, other.peer = other, leader
	leader.fetch, other.fetch = emptyLeader, follower
	cl, err := kgo.NewClient(kgo.SeedBrokers(leader.ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl, leader, other
}

func TestReadReplicasSkipsWhenFollowerReadsAreNotServed(t *testing.T) {
	cl, leader, follower := fakeCluster(t, notLeader)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	final := map[int32]*PartitionLog{0: {Records: map[int64]string{}}}
	logs, check := readReplicas(ctx, cl, kadm.NewClient(cl), "t", final)
	if check != "skipped: follower reads not served" || logs != nil {
		t.Fatalf("check = %q, logs %v; want skipped: follower reads not served", check, logs)
	}
	for _, fb := range []*fakeBroker{leader, follower} {
		fb.mu.Lock()
		n := len(fb.fetches)
		var first *kmsg.FetchRequest
		if n > 0 {
			first = fb.fetches[0]
		}
		fb.mu.Unlock()
		if n == 0 {
			t.Fatalf("broker %d was never fetched from", fb.id)
		}
		// A consumer's fetch, new enough for KIP-392 follower fetching.
		if first.ReplicaID != -1 || first.Version < 11 {
			t.Errorf("broker %d got replica id %d, Fetch v%d; want -1, v11+", fb.id, first.ReplicaID, first.Version)
		}
	}
	// Reported, not counted as a violation.
	r := Check(&History{Final: final, Replicas: logs, ReplicaCheck: check})
	if !r.OK() || r.ReplicaCheck != "skipped: follower reads not served" {
		t.Errorf("report: OK %v, replica check %q", r.OK(), r.ReplicaCheck)
	}
}

func TestReadReplicasFromServingFollowers(t *testing.T) {
	cl, _, _ := fakeCluster(t, emptyLeader) // the follower answers too
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	final := map[int32]*PartitionLog{0: {Records: map[int64]string{}}}
	logs, check := readReplicas(ctx, cl, kadm.NewClient(cl), "t", final)
	if check != "done" || len(logs[0]) != 2 {
		t.Fatalf("check = %q, %d replica logs of partition 0; want done, 2", check, len(logs[0]))
	}
}

func TestReadReplicasReportsUnreadableReplica(t *testing.T) {
	cl, _, _ := fakeCluster(t, func(rp *kmsg.FetchRequestTopicPartition) kmsg.FetchResponseTopicPartition {
		p := notLeader(rp)
		p.ErrorCode = kerr.KafkaStorageError.Code // retriable: tried until the deadline
		return p
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	final := map[int32]*PartitionLog{0: {Records: map[int64]string{}}}
	_, check := readReplicas(ctx, cl, kadm.NewClient(cl), "t", final)
	if want := "skipped: broker 2 partition 0: "; !strings.HasPrefix(check, want) {
		t.Fatalf("check = %q, want it to start %q", check, want)
	}
}
