package broker

// Regressions found in review: each failed before its fix.

import (
	"context"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/internal/testutil"
)

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

func fetchRequest(topic string, partition int32, offset int64, waitMs, minBytes int32) *kmsg.FetchRequest {
	fr := kmsg.NewPtrFetchRequest()
	fr.Version, fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 11, -1, waitMs, minBytes, 50<<20
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: topic, Partitions: []kmsg.FetchRequestTopicPartition{{Partition: partition, FetchOffset: offset, PartitionMaxBytes: 50 << 20}}}}
	return fr
}

// A client that pipelines big fetches and never reads must not hold Close
// up: its writes fail after the shutdown grace.
func TestRegressionCloseWithClientThatDoesNotRead(t *testing.T) {
	b := startBroker(t, t.TempDir(), func(c *Config) { c.SyncAcks = false; c.ShutdownGrace = 200 * time.Millisecond })
	cl := client(t, b, kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("big"), kgo.ProducerBatchMaxBytes(1<<20))
	val := []byte(strings.Repeat("x", 900<<10))
	for range 8 {
		if err := cl.ProduceSync(ctxT(t), &kgo.Record{Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c := dialRaw(t, b)
	var all []byte
	for i := int32(1); i <= 60; i++ {
		all = append(all, frameRequest(fetchRequest("big", 0, 0, 0, 0), i)...)
	}
	go c.nc.Write(all) // and never read
	testutil.Eventually(t, "the fetches to be read", func() bool { return b.server.Stats().InFlight >= 10 })
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close blocked by a client that does not read")
	}
}

// A long poll whose client goes away ends with its connection, not after
// MaxWait.
func TestRegressionLongPollEndsWithItsConnection(t *testing.T) {
	b := startBroker(t, t.TempDir(), nil)
	if _, err := admin(t, b).CreateTopic(ctxT(t), 1, 1, nil, "lp"); err != nil {
		t.Fatal(err)
	}
	before := b.server.Stats().Connections // the admin client's
	for range 20 {
		c := dialRaw(t, b)
		if _, err := c.nc.Write(frameRequest(fetchRequest("lp", 0, 0, 600_000, 1), 1)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the long poll to arrive", func() bool { return b.server.Stats().InFlight >= 1 })
		c.nc.Close()
	}
	testutil.Eventually(t, "closed clients' connections to go", func() bool { return b.server.Stats().Connections == before })
}

// One request must not be able to ask for billions of partitions.
func TestRegressionHugePartitionCountRefused(t *testing.T) {
	b := startBroker(t, t.TempDir(), nil)
	c := dialRaw(t, b)
	for _, validateOnly := range []bool{true, false} {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version, req.ValidateOnly, req.TimeoutMillis = 4, validateOnly, 5000
		req.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "huge", NumPartitions: 1<<31 - 1, ReplicationFactor: 1}}
		if code := c.send(req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != kerr.InvalidPartitions.Code {
			t.Fatalf("validateOnly=%v: error %d, want INVALID_PARTITIONS", validateOnly, code)
		}
	}
	produceRaw(c, "grow", idempotentBatch(-1, -1, -1, "x"))
	if err := b.CreatePartitions(context.Background(), "grow", 1<<30, false); err == nil {
		t.Fatal("CreatePartitions to 2^30 accepted")
	}
}

// A delete whose metadata write fails is undone: the topic keeps serving
// and keeps its data across a restart.
func TestRegressionFailedDeleteIsUndone(t *testing.T) {
	dir := t.TempDir()
	b := startBroker(t, dir, nil)
	c := dialRaw(t, b)
	if p := produceRaw(c, "keep", idempotentBatch(-1, -1, -1, "v")); p.ErrorCode != 0 {
		t.Fatal(p)
	}
	tmp := dir + "/metadata.json.tmp"
	if err := os.Mkdir(tmp, 0o755); err != nil { // makes the metadata write fail
		t.Fatal(err)
	}
	if err := b.DeleteTopic(context.Background(), "keep"); err == nil {
		t.Fatal("delete succeeded although metadata could not be saved")
	}
	if p := produceRaw(c, "keep", idempotentBatch(-1, -1, -1, "w")); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("produce after a failed delete: %+v", p)
	}
	os.Remove(tmp)
	b.Close()
	b = startBroker(t, dir, nil)
	p, err := b.Partition("keep", 0)
	if err != nil || p.LogEndOffset() != 2 {
		t.Fatalf("after restart: %v, log end %d, want 2", err, p.LogEndOffset())
	}
}

// Every served version of every API decodes and answers right.
func TestVersionSweep(t *testing.T) {
	b := startBroker(t, t.TempDir(), nil)
	c := dialRaw(t, b)
	for v := int16(0); v <= 7; v++ {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Version, req.TimeoutMillis = v, 5000
		req.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "ct" + string(rune('a'+v)), NumPartitions: 2, ReplicationFactor: 1}}
		if code := c.send(req).(*kmsg.CreateTopicsResponse).Topics[0].ErrorCode; code != 0 {
			t.Errorf("CreateTopics v%d: error %d", v, code)
		}
	}
	for v := int16(0); v <= 12; v++ {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = v
		name := "cta"
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: &name}}
		r := c.send(req).(*kmsg.MetadataResponse)
		if len(r.Topics) != 1 || r.Topics[0].ErrorCode != 0 || len(r.Topics[0].Partitions) != 2 {
			t.Errorf("Metadata v%d: %+v", v, r.Topics)
		}
	}
	for v := int16(3); v <= 9; v++ {
		pr := kmsg.NewPtrProduceRequest()
		pr.Version, pr.Acks, pr.TimeoutMillis = v, -1, 5000
		pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "cta", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 1, Records: idempotentBatch(-1, -1, -1, "x")}}}}
		if p := c.send(pr).(*kmsg.ProduceResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.BaseOffset != int64(v-3) {
			t.Errorf("Produce v%d: %+v", v, p)
		}
	}
	for v := int16(4); v <= 12; v++ {
		fr := fetchRequest("cta", 1, 0, 0, 0)
		fr.Version = v
		p := c.send(fr).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 7 || len(p.RecordBatches) == 0 {
			t.Errorf("Fetch v%d: error %d hw %d, %d bytes", v, p.ErrorCode, p.HighWatermark, len(p.RecordBatches))
		}
	}
	for v := int16(0); v <= 7; v++ {
		for ts, want := range map[int64]int64{-1: 7, -2: 0} {
			req := kmsg.NewPtrListOffsetsRequest()
			req.Version, req.ReplicaID = v, -1
			req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "cta", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 1, Timestamp: ts, MaxNumOffsets: 1}}}}
			p := c.send(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
			got := p.Offset
			if v == 0 && len(p.OldStyleOffsets) == 1 {
				got = p.OldStyleOffsets[0]
			}
			if p.ErrorCode != 0 || got != want {
				t.Errorf("ListOffsets v%d ts %d: error %d offset %d, want %d", v, ts, p.ErrorCode, got, want)
			}
		}
	}
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version = v
		req.ProducerID, req.ProducerEpoch = -1, -1
		if r := c.send(req).(*kmsg.InitProducerIDResponse); r.ErrorCode != 0 || r.ProducerID < 0 || r.ProducerEpoch != 0 {
			t.Errorf("InitProducerID v%d: %+v", v, r)
		}
	}
	for v := int16(0); v <= 3; v++ {
		req := kmsg.NewPtrCreatePartitionsRequest()
		req.Version, req.TimeoutMillis = v, 5000
		req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "ctb", Count: int32(3 + v)}}
		if code := c.send(req).(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode; code != 0 {
			t.Errorf("CreatePartitions v%d: error %d", v, code)
		}
	}
	for v := int16(0); v <= 6; v++ {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version, req.TimeoutMillis = v, 5000
		name := "ct" + string(rune('a'+v))
		if v < 6 {
			req.TopicNames = []string{name}
		} else {
			req.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: &name}}
		}
		if code := c.send(req).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode; code != 0 {
			t.Errorf("DeleteTopics v%d: error %d", v, code)
		}
	}
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Version = v
		req.Resources = []kmsg.DescribeConfigsRequestResource{{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "1"},
			{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "cth"}, {ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: "nope"}}
		r := c.send(req).(*kmsg.DescribeConfigsResponse)
		if len(r.Resources) != 3 || r.Resources[0].ErrorCode != 0 || len(r.Resources[0].Configs) == 0 ||
			r.Resources[1].ErrorCode != 0 || len(r.Resources[1].Configs) == 0 || r.Resources[2].ErrorCode != kerr.UnknownTopicOrPartition.Code {
			t.Errorf("DescribeConfigs v%d: %d resources, errors %d/%d/%d", v, len(r.Resources), r.Resources[0].ErrorCode, r.Resources[1].ErrorCode, r.Resources[2].ErrorCode)
		}
	}
}

// Topic admin racing produce and fetch on the same partitions: no races,
// no panics (run with -race).
func TestAdminChurnUnderLoad(t *testing.T) {
	b := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan struct{}, 4)
	for range 3 {
		go func() {
			defer func() { done <- struct{}{} }()
			c := dialRaw(t, b)
			for ctx.Err() == nil {
				pr := kmsg.NewPtrProduceRequest()
				pr.Version, pr.Acks, pr.TimeoutMillis = 9, -1, 5000
				pr.Topics = []kmsg.ProduceRequestTopic{{Topic: "churn", Partitions: []kmsg.ProduceRequestTopicPartition{
					{Partition: 0, Records: idempotentBatch(-1, -1, -1, "x")}, {Partition: 2, Records: idempotentBatch(-1, -1, -1, "y")}}}}
				c.send(pr)
				fr := fetchRequest("churn", 0, 0, 50, 1)
				fr.Topics[0].Partitions = append(fr.Topics[0].Partitions, fr.Topics[0].Partitions[0])
				fr.Topics[0].Partitions[1].Partition = 2
				c.send(fr)
			}
		}()
	}
	go func() {
		defer func() { done <- struct{}{} }()
		for ctx.Err() == nil {
			_ = b.CreatePartitions(ctx, "churn", 3, false)
			_ = b.DeleteTopic(ctx, "churn")
			b.RunRetention()
		}
	}()
	for range 4 {
		<-done
	}
	c := dialRaw(t, b)
	if p := produceRaw(c, "after-churn", idempotentBatch(-1, -1, -1, "z")); p.ErrorCode != 0 {
		t.Fatalf("broker unwell after churn: %+v", p)
	}
}
