package broker_test

// Regressions found in review: each failed before its fix.

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/protocol"
)

// A client that pipelines big fetches and never reads must not hold Close
// up: its writes fail after the shutdown grace.
func TestRegressionCloseWithClientThatDoesNotRead(t *testing.T) {
	_, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.SyncAcks = false; cfg.ShutdownGrace = 200 * time.Millisecond })
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
	testutil.Eventually(t, "the fetches to be read", func() bool { return broker.ServerStats(b).InFlight >= 10 })
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
	_, b := startOne(t)
	if _, err := admin(t, b).CreateTopic(ctxT(t), 1, 1, nil, "lp"); err != nil {
		t.Fatal(err)
	}
	waitLeading(t, b, "lp")
	before := broker.ServerStats(b).Connections // the admin client's
	for range 20 {
		c := dialRaw(t, b)
		if _, err := c.nc.Write(frameRequest(fetchRequest("lp", 0, 0, 600_000, 1), 1)); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, "the long poll to arrive", func() bool { return broker.ServerStats(b).InFlight >= 1 })
		c.nc.Close()
	}
	testutil.Eventually(t, "closed clients' connections to go", func() bool { return broker.ServerStats(b).Connections == before })
}

// One request must not be able to ask for billions of partitions.
func TestRegressionHugePartitionCountRefused(t *testing.T) {
	_, b := startOne(t)
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

// A delete is all or nothing across a crash: a delete that fails changes
// nothing; one the Raft metadata committed stays done after a restart,
// and a partition's removal a crash interrupted (its directory renamed,
// not yet removed) is finished at start-up, while every other topic keeps
// serving with its data. (A standalone broker once kept its topics in
// metadata.json and had to undo a delete whose write failed; the Raft
// metadata applies only what it committed.)
func TestRegressionDeleteAllOrNothingAcrossCrash(t *testing.T) {
	c, b := startOne(t)
	conn := dialRaw(t, b)
	if p := produceRaw(conn, "keep", idempotentBatch(-1, -1, -1, "v")); p.ErrorCode != 0 {
		t.Fatal(p)
	}
	if p := produceRaw(conn, "gone", idempotentBatch(-1, -1, -1, "g")); p.ErrorCode != 0 {
		t.Fatal(p)
	}
	for _, bad := range []string{"never-existed", "bad name!"} {
		if err := b.DeleteTopic(ctxT(t), bad); err == nil {
			t.Fatalf("delete of %q succeeded", bad)
		}
	}
	if p := produceRaw(conn, "keep", idempotentBatch(-1, -1, -1, "w")); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("produce after failed deletes: %+v", p)
	}
	if err := b.DeleteTopic(ctxT(t), "gone"); err != nil {
		t.Fatal(err)
	}
	dataDir := c.Configs[0].DataDir
	gone := filepath.Join(dataDir, "gone-0")
	testutil.Eventually(t, "the deleted partition's directory removed", func() bool {
		_, err := os.Stat(gone)
		return errors.Is(err, fs.ErrNotExist)
	})
	// A crash between the rename and the removal leaves this behind.
	if err := os.MkdirAll(gone+"-delete", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(gone+"-delete", "00000000000000000000.log"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	c.StartNode(0)
	waitServing(c)
	b = c.Brokers[0]
	if _, err := b.Topic("gone"); !errors.Is(err, protocol.ErrUnknownTopic) {
		t.Fatalf("deleted topic after a crash: %v, want unknown", err)
	}
	for _, dir := range []string{gone, gone + "-delete"} {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still there after the restart: %v", dir, err)
		}
	}
	waitLeading(t, b, "keep")
	p, err := b.Partition("keep", 0)
	if err != nil || p.LogEndOffset() != 2 {
		t.Fatalf("after restart: %v, log end %d, want 2", err, p.LogEndOffset())
	}
	if p := produceRaw(dialRaw(t, b), "keep", idempotentBatch(-1, -1, -1, "x")); p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Fatalf("produce after the restart: %+v", p)
	}
}

// Every served version of every API decodes and answers right.
func TestVersionSweep(t *testing.T) {
	_, b := startOne(t)
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
	waitLeading(t, b, "cta")
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
			req.Topics = []kmsg.ListOffsetsRequestTopic{{Topic: "cta", Partitions: []kmsg.ListOffsetsRequestTopicPartition{{Partition: 1, CurrentLeaderEpoch: -1, Timestamp: ts, MaxNumOffsets: 1}}}}
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
	_, b := startOne(t)
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
