package broker_test

import (
	"errors"
	"slices"
	"strings"
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

// liveCluster is three brokers whose retention runs every 50 ms.
func liveCluster(t *testing.T) *brokertest.Cluster {
	t.Helper()
	c := brokertest.Start(t, 3, func(_ int, cfg *broker.Config) { cfg.RetentionCheckInterval = 50 * time.Millisecond })
	c.WaitBrokers(3)
	return c
}

// alterTopic sends one IncrementalAlterConfigs for topic to broker id
// (which forwards it to the controller unless it is the controller).
func alterTopic(t *testing.T, cl *kgo.Client, id int32, topic string, validateOnly bool, ops ...kmsg.IncrementalAlterConfigsRequestResourceConfig) error {
	t.Helper()
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.ValidateOnly = validateOnly
	rr := kmsg.NewIncrementalAlterConfigsRequestResource()
	rr.ResourceType, rr.ResourceName, rr.Configs = kmsg.ConfigResourceTypeTopic, topic, ops
	req.Resources = append(req.Resources, rr)
	resp, err := req.RequestWith(ctxT(t), cl.Broker(int(id)))
	if err != nil {
		t.Fatal(err)
	}
	return kerr.ErrorForCode(resp.Resources[0].ErrorCode)
}

func op(name string, o kmsg.IncrementalAlterConfigOp, value string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
	return kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: name, Op: o, Value: kmsg.StringPtr(value)}
}

// topicConfig is the topic's config name as broker id describes it.
func topicConfig(t *testing.T, cl *kgo.Client, topic, name string) (string, kmsg.ConfigSource) {
	t.Helper()
	rcs, err := kadm.NewClient(cl).DescribeTopicConfigs(ctxT(t), topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil || rc.Err != nil {
		t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
	}
	for _, c := range rc.Configs {
		if c.Key == name && c.Value != nil {
			return *c.Value, c.Source
		}
	}
	return "", 0
}

// waitConfig waits until every broker describes the topic's config as
// value (each learns the change from the metadata).
func waitConfig(t *testing.T, cl *kgo.Client, topic, name, value string) {
	t.Helper()
	testutil.Eventually(t, topic+" "+name+"="+value, func() bool {
		v, _ := topicConfig(t, cl, topic, name)
		return v == value
	})
}

// Topic configs change without a restart, through any broker: retention.ms
// lowered on a topic with closed segments deletes them on every replica;
// cleanup.policy takes APPEND and SUBTRACT; min.insync.replicas refuses
// acks=all at once and accepts again when deleted; a bad value, an
// unknown topic or config, and validate-only change nothing; a dynamic
// cluster-wide log.retention.ms reaches a topic that sets none.
func TestAlterTopicConfigsLive(t *testing.T) {
	c := liveCluster(t)
	c.CreateTopic("live", 1, 3, map[string]*string{"segment.bytes": kmsg.StringPtr("1024"), "retention.ms": kmsg.StringPtr("-1")})
	cl := c.Client()
	for range 40 { // small batches: many 1 KiB segments
		produceValues(t, cl, "live", values(5, strings.Repeat("v", 40)))
	}
	testutil.Eventually(t, "several segments from offset 0 on every replica", func() bool {
		for i := range c.Brokers {
			if p := replica(c, i, "live", 0); p == nil || p.LogEndOffset() != 200 || p.Log().NumSegments() < 3 || p.LogStartOffset() != 0 {
				return false
			}
		}
		return true
	})
	ids := []int32{1, 2, 3}
	if err := alterTopic(t, cl, ids[0], "live", true, op("retention.ms", kmsg.IncrementalAlterConfigOpSet, "1")); err != nil {
		t.Fatalf("validate only: %v", err)
	}
	if v, _ := topicConfig(t, cl, "live", "retention.ms"); v != "-1" {
		t.Fatalf("validate-only changed retention.ms to %q", v)
	}
	if err := alterTopic(t, cl, ids[1], "live", false, op("retention.ms", kmsg.IncrementalAlterConfigOpSet, "1")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "old segments deleted on every replica", func() bool {
		for i := range c.Brokers {
			if p := replica(c, i, "live", 0); p == nil || p.LogStartOffset() == 0 || p.Log().NumSegments() != 1 {
				return false
			}
		}
		return true
	})
	waitConfig(t, cl, "live", "retention.ms", "1")
	if _, src := topicConfig(t, cl, "live", "retention.ms"); src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms described with source %v", src)
	}

	if err := alterTopic(t, cl, ids[2], "live", false, op("cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, "compact")); err != nil {
		t.Fatal(err)
	}
	waitConfig(t, cl, "live", "cleanup.policy", "compact") // APPEND to an unset list starts it
	if err := alterTopic(t, cl, ids[0], "live", false, op("cleanup.policy", kmsg.IncrementalAlterConfigOpAppend, "delete"),
		op("retention.ms", kmsg.IncrementalAlterConfigOpDelete, "")); err != nil {
		t.Fatal(err)
	}
	waitConfig(t, cl, "live", "cleanup.policy", "compact,delete")
	if err := alterTopic(t, cl, ids[1], "live", false, op("cleanup.policy", kmsg.IncrementalAlterConfigOpSubtract, "compact")); err != nil {
		t.Fatal(err)
	}
	waitConfig(t, cl, "live", "cleanup.policy", "delete")
	if _, src := topicConfig(t, cl, "live", "cleanup.policy"); src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("cleanup.policy after SUBTRACT compact: source %v", src)
	}

	for _, tc := range []struct {
		topic string
		op    kmsg.IncrementalAlterConfigsRequestResourceConfig
		want  *kerr.Error
	}{
		{"live", op("retention.ms", kmsg.IncrementalAlterConfigOpSet, "soon"), kerr.InvalidConfig},
		{"live", op("cleanup.policy", kmsg.IncrementalAlterConfigOpSet, "forever"), kerr.InvalidConfig},
		{"live", op("no.such.config", kmsg.IncrementalAlterConfigOpSet, "1"), kerr.InvalidConfig},
		{"missing", op("retention.ms", kmsg.IncrementalAlterConfigOpSet, "1"), kerr.UnknownTopicOrPartition},
	} {
		if err := alterTopic(t, cl, ids[2], tc.topic, false, tc.op); !errors.Is(err, tc.want) {
			t.Errorf("%s %s=%s: %v, want %v", tc.topic, tc.op.Name, *tc.op.Value, err, tc.want)
		}
	}

	// min.insync.replicas applies to the next acks=all produce.
	if err := alterTopic(t, cl, ids[0], "live", false, op("min.insync.replicas", kmsg.IncrementalAlterConfigOpSet, "4")); err != nil {
		t.Fatal(err)
	}
	once := c.Client(kgo.DisableIdempotentWrite(), kgo.RecordRetries(1))
	testutil.Eventually(t, "acks=all refused with min.insync.replicas=4 of 3", func() bool {
		err := once.ProduceSync(ctxT(t), &kgo.Record{Topic: "live", Value: []byte("x")}).FirstErr()
		return errors.Is(err, kerr.NotEnoughReplicas)
	})
	if err := alterTopic(t, cl, ids[1], "live", false, op("min.insync.replicas", kmsg.IncrementalAlterConfigOpDelete, "")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "acks=all accepted again", func() bool {
		return cl.ProduceSync(ctxT(t), &kgo.Record{Topic: "live", Value: []byte("y")}).FirstErr() == nil
	})

	// A cluster-wide dynamic default reaches a topic that sets nothing.
	c.CreateTopic("defaults", 1, 3, map[string]*string{"segment.bytes": kmsg.StringPtr("1024")})
	for range 40 {
		produceValues(t, cl, "defaults", values(5, strings.Repeat("d", 40)))
	}
	adm := kadm.NewClient(cl)
	res, err := adm.AlterBrokerConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "log.retention.ms", Value: kmsg.StringPtr("1")}})
	if err == nil {
		for _, r := range res {
			err = errors.Join(err, r.Err)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, "the dynamic default deleting old segments", func() bool {
		for i := range c.Brokers {
			if p := replica(c, i, "defaults", 0); p == nil || p.LogStartOffset() == 0 {
				return false
			}
		}
		return true
	})
	waitConfig(t, cl, "defaults", "retention.ms", "1")
	if _, src := topicConfig(t, cl, "defaults", "retention.ms"); src != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("the default retention.ms described with source %v", src)
	}
	brc, err := adm.DescribeBrokerConfigs(ctxT(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, rc := range brc {
		for _, cf := range rc.Configs {
			if cf.Key == "log.retention.ms" && cf.Value != nil && *cf.Value == "1" && cf.Source == kmsg.ConfigSourceDynamicDefaultBrokerConfig {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("broker 2 does not describe log.retention.ms=1 from the dynamic default: %+v", brc)
	}
	for name, value := range map[string]string{
		"num.partitions":    "9",          // static: needs a restart
		"log.segment.bytes": "3000000000", // valid alone, but no segment may be that big: no replica could open
	} {
		res, _ = adm.AlterBrokerConfigs(ctxT(t), []kadm.AlterConfig{{Op: kadm.SetConfig, Name: name, Value: kmsg.StringPtr(value)}})
		for _, r := range res {
			if !errors.Is(r.Err, kerr.InvalidConfig) {
				t.Errorf("broker config %s=%s altered: %v", name, value, r.Err)
			}
		}
	}
}

// DeleteRecords moves the log start on the leader and, with their next
// fetch, on the followers; consumers start there; past the high watermark
// is refused.
func TestDeleteRecords(t *testing.T) {
	c := liveCluster(t)
	c.CreateTopic("trim", 1, 3, map[string]*string{"segment.bytes": kmsg.StringPtr("1024")})
	cl := c.Client()
	produceValues(t, cl, "trim", values(100, "r"))
	adm := kadm.NewClient(cl)
	os := make(kadm.Offsets)
	os.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 60})
	res, err := adm.DeleteRecords(ctxT(t), os)
	if err != nil {
		t.Fatal(err)
	}
	r, ok := res.Lookup("trim", 0)
	if !ok || r.Err != nil || r.LowWatermark != 60 {
		t.Fatalf("delete records: %+v", r)
	}
	testutil.Eventually(t, "every replica starting at 60", func() bool {
		for i := range c.Brokers {
			if p := replica(c, i, "trim", 0); p == nil || p.LogStartOffset() != 60 {
				return false
			}
		}
		return true
	})
	starts, err := adm.ListStartOffsets(ctxT(t), "trim")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("trim", 0); o.Offset != 60 {
		t.Errorf("ListOffsets earliest = %d, want 60", o.Offset)
	}
	got := consumeCluster(t, c, "trim", 40)
	if got[0].Offset != 60 || string(got[0].Value) != "r60" {
		t.Errorf("a consumer from the start read offset %d %q first, want 60 r60", got[0].Offset, got[0].Value)
	}
	os = make(kadm.Offsets)
	os.Add(kadm.Offset{Topic: "trim", Partition: 0, At: 1000})
	res, err = adm.DeleteRecords(ctxT(t), os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("trim", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
		t.Errorf("deleting past the high watermark: %v, want OFFSET_OUT_OF_RANGE", r.Err)
	}
	os = make(kadm.Offsets)
	os.Add(kadm.Offset{Topic: "trim", Partition: 0, At: -1}) // to the high watermark
	if res, err = adm.DeleteRecords(ctxT(t), os); err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("trim", 0); r.Err != nil || r.LowWatermark != 100 {
		t.Errorf("delete to the high watermark: %+v", r)
	}
}

// DescribeCluster names the cluster, the controller and every broker as
// Metadata does; controller endpoints are not described.
func TestDescribeCluster(t *testing.T) {
	c := liveCluster(t)
	cl := c.Client()
	req := kmsg.NewPtrDescribeClusterRequest()
	req.IncludeClusterAuthorizedOperations = true
	resp, err := req.RequestWith(ctxT(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	md, err := kadm.NewClient(cl).BrokerMetadata(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ErrorCode != 0 || resp.ClusterID != md.Cluster || resp.ControllerID != md.Controller || len(resp.Brokers) != 3 {
		t.Fatalf("describe cluster: %+v, metadata %+v", resp, md)
	}
	if resp.ClusterAuthorizedOperations&(1<<8) == 0 { // DESCRIBE
		t.Errorf("authorized operations %b lack DESCRIBE", resp.ClusterAuthorizedOperations)
	}
	req.EndpointType = 2
	resp, err = req.RequestWith(ctxT(t), cl)
	if err != nil || resp.ErrorCode != kerr.UnsupportedEndpointType.Code {
		t.Errorf("controller endpoints: %v %+v", err, resp)
	}
}

// A replica added after DeleteRecords cut inside a batch starts at that
// batch (its log start raised back to the leader's), catches up and joins
// the ISR; before the fix it stood at the log start for ever, its fetches
// refused as below its log end.
func TestReplicaAddedAfterDeleteRecordsInsideABatch(t *testing.T) {
	c := brokertest.Start(t, 4)
	c.CreateTopic("cut", 1, 3, nil)
	produceValues(t, c.Client(), "cut", values(100, "x")) // one batch, offsets 0-99
	adm := c.Admin()
	os := make(kadm.Offsets)
	os.Add(kadm.Offset{Topic: "cut", Partition: 0, At: 5})
	if res, err := adm.DeleteRecords(ctxT(t), os); err != nil || res.Error() != nil {
		t.Fatalf("delete records: %v %v", err, res.Error())
	}
	reps := assignment(t, c, 0, "cut")[0]
	add := int32(0)
	for id := int32(1); id <= 4; id++ {
		if !slices.Contains(reps, id) {
			add = id
		}
	}
	target := []int32{reps[0], reps[1], add}
	reassign(t, adm, "cut", map[int32][]int32{0: target})
	testutil.Eventually(t, "the added replica caught up and in the ISR", func() bool {
		_, isr := c.PartitionInfo("cut", 0)
		r := replica(c, c.Index(add), "cut", 0)
		return slices.Contains(isr, add) && r != nil && r.LogStartOffset() == 5 && r.LogEndOffset() == 100
	})
}
