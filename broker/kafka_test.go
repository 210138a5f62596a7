package broker_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/protocol"
)

func TestProduceConsumeEveryAcks(t *testing.T) {
	_, b := startOne(t)
	for _, acks := range []struct {
		name string
		opts []kgo.Opt
	}{
		{"acks=all idempotent", []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}},
		{"acks=1", []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}},
		{"acks=0", []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}},
	} {
		t.Run(acks.name, func(t *testing.T) {
			topic := "acks-" + strings.NewReplacer("=", "", " ", "-").Replace(acks.name)
			cl := client(t, b, append(acks.opts, kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))...)
			want := values(500, "v")
			produceValues(t, cl, topic, want)
			checkRecords(t, consumeAll(t, b, topic, len(want)), want)
		})
	}
}

// Topic admin on a one-node cluster, and what it made survives a
// restart: topics, partitions and configs from the Raft metadata (once a
// standalone broker's metadata.json), records from the logs. Replication
// factor 3 is refused on one broker.
func TestTopicAdminAndConfigsPersistAcrossRestart(t *testing.T) {
	c, b := startOne(t)
	adm := admin(t, b)
	ctx := ctxT(t)
	ret := "3600000"
	res, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"retention.ms": &ret}, "orders")
	if err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	// Already exists; bad names; bad configs; validate-only.
	if res, _ := adm.CreateTopic(ctx, 1, 1, nil, "orders"); !errors.Is(res.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("duplicate create: %v", res.Err)
	}
	for _, bad := range []string{"..", "has space", string(make([]byte, 250))} {
		if res, _ := adm.CreateTopic(ctx, 1, 1, nil, bad); !errors.Is(res.Err, kerr.InvalidTopicException) {
			t.Fatalf("create %q: %v, want INVALID_TOPIC_EXCEPTION", bad, res.Err)
		}
	}
	bogus := "nope"
	if res, _ := adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.ms": &bogus}, "badcfg"); !errors.Is(res.Err, kerr.InvalidConfig) {
		t.Fatalf("bad config: %v", res.Err)
	}
	if res, _ := adm.CreateTopic(ctx, 1, 3, nil, "rf3"); !errors.Is(res.Err, kerr.InvalidReplicationFactor) {
		t.Fatalf("rf 3 on one broker: %v", res.Err)
	}
	if _, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "dry"); err != nil {
		t.Fatal(err)
	}
	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !topics.Has("orders") || topics.Has("dry") || len(topics["orders"].Partitions) != 3 {
		t.Fatalf("topics after creates: %v", topics.Names())
	}
	if _, err := adm.CreatePartitions(ctx, 2, "orders"); err != nil {
		t.Fatal(err)
	}
	// Data in every partition, then a restart.
	cl := client(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range int32(5) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "orders", Partition: p, Value: fmt.Appendf(nil, "p%d", p)}).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", p, err)
		}
	}
	b = restart(c, 0)
	adm = admin(t, b)
	ctx = ctxT(t)
	topics, err = adm.ListTopics(ctx)
	if err != nil || len(topics["orders"].Partitions) != 5 {
		t.Fatalf("after restart: %v %v", err, topics)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cfgs.On("orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range rc.Configs {
		if e.Key == "retention.ms" {
			found = e.MaybeValue() == "3600000" && e.Source == 1 // DYNAMIC_TOPIC_CONFIG
		}
	}
	if !found {
		t.Fatalf("retention.ms not kept across restart: %+v", rc.Configs)
	}
	ends, err := adm.ListEndOffsets(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset != 1 {
			t.Errorf("partition %d ends at %d after restart, want 1", o.Partition, o.Offset)
		}
	})
	// Delete, then it is gone and can be made again.
	if dr, err := adm.DeleteTopics(ctx, "orders"); err != nil || dr.Error() != nil {
		t.Fatalf("delete: %v %v", err, dr.Error())
	}
	// A new client: kgo serves repeated all-topics metadata from a short cache.
	adm = admin(t, b)
	topics, _ = adm.ListTopics(ctx)
	if topics.Has("orders") {
		t.Fatalf("deleted topic still listed: %+v", topics["orders"])
	}
	if res, err := adm.CreateTopic(ctx, 1, 1, nil, "orders"); err != nil || res.Err != nil {
		t.Fatalf("recreate: %v %v", err, res.Err)
	}
	ends, _ = adm.ListEndOffsets(ctx, "orders")
	if o, _ := ends.Lookup("orders", 0); o.Offset != 0 {
		t.Fatalf("recreated topic starts at %d", o.Offset)
	}
}

func TestListOffsetsByTimestamp(t *testing.T) {
	_, b := startOne(t)
	cl := client(t, b, kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
	base := time.UnixMilli(1_700_000_000_000)
	ctx := ctxT(t)
	for i := range 10 {
		r := &kgo.Record{Topic: "ts", Value: []byte("x"), Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	adm := kadm.NewClient(cl)
	for _, tc := range []struct {
		ts   time.Time
		want int64
	}{{base, 0}, {base.Add(4500 * time.Millisecond), 5}, {base.Add(9 * time.Second), 9}, {base.Add(time.Hour), -1}} {
		got, err := adm.ListOffsetsAfterMilli(ctx, tc.ts.UnixMilli(), "ts")
		if err != nil {
			t.Fatal(err)
		}
		o, _ := got.Lookup("ts", 0)
		if o.Err != nil || (tc.want >= 0 && o.Offset != tc.want) {
			t.Fatalf("offset after %v: %d (%v), want %d", tc.ts.Sub(base), o.Offset, o.Err, tc.want)
		}
	}
	start, _ := adm.ListStartOffsets(ctx, "ts")
	end, _ := adm.ListEndOffsets(ctx, "ts")
	if o, _ := start.Lookup("ts", 0); o.Offset != 0 {
		t.Fatalf("earliest %d", o.Offset)
	}
	if o, _ := end.Lookup("ts", 0); o.Offset != 10 {
		t.Fatalf("latest %d", o.Offset)
	}
}

func TestAutoCreateCanBeTurnedOff(t *testing.T) {
	_, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.AutoCreateTopics = false })
	cl := client(t, b, kgo.AllowAutoTopicCreation(), kgo.RecordRetries(2), kgo.ProduceRequestTimeout(time.Second))
	ctx := ctxT(t)
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "missing", Value: []byte("x")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("produce to a missing topic with auto-create off: %v", err)
	}
	topics, _ := kadm.NewClient(cl).ListTopics(ctx)
	if topics.Has("missing") {
		t.Fatal("topic was created")
	}
}

func TestLongPollFetchWokenByProduce(t *testing.T) {
	_, b := startOne(t)
	prod := client(t, b, kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0))
	produceValues(t, prod, "poll", []string{"first"})
	// A consumer waiting with a 20 s max wait gets the next record as soon
	// as it is produced: the fetch is woken, not timed out.
	cons := client(t, b, kgo.ConsumeTopics("poll"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(20*time.Second))
	ctx := ctxT(t)
	if fs := cons.PollFetches(ctx); len(fs.Records()) != 1 {
		t.Fatalf("first poll: %d records", len(fs.Records()))
	}
	got := make(chan []*kgo.Record, 1)
	go func() { got <- cons.PollFetches(ctx).Records() }()
	start := time.Now()
	produceValues(t, prod, "poll", []string{"second"})
	select {
	case recs := <-got:
		if len(recs) != 1 || string(recs[0].Value) != "second" {
			t.Fatalf("second poll: %v", recs)
		}
		if waited := time.Since(start); waited > 15*time.Second {
			t.Fatalf("fetch returned after %v: it waited out its max wait instead of being woken", waited)
		}
	case <-ctx.Done():
		t.Fatal("long poll never returned")
	}
}

func TestSyncNeverStillServes(t *testing.T) {
	_, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.SyncAcks = false })
	cl := client(t, b, kgo.AllowAutoTopicCreation())
	want := values(100, "n")
	produceValues(t, cl, "nosync", want)
	checkRecords(t, consumeAll(t, b, "nosync", len(want)), want)
	entries, err := b.BrokerConfigs("1")
	if err != nil {
		t.Fatal(err)
	}
	if got := slices.IndexFunc(entries, func(e protocol.ConfigEntry) bool { return e.Name == "mlog.fsync" && *e.Value == "never" }); got < 0 {
		t.Fatal("broker configs do not report mlog.fsync=never")
	}
}

// DescribeConfigs reports the values mlog enforces, not Kafka's: a topic
// that does not set min.insync.replicas gets 2 with three replicas and 1
// with one, and a broker's default.replication.factor is min(3, live
// brokers) with the min.insync.replicas a topic made with it gets.
func TestDescribeConfigsReportEnforcedDefaults(t *testing.T) {
	for _, tt := range []struct {
		brokers                       int
		topicRF                       int16
		topicMinISR                   string
		brokerDefaultRF, brokerMinISR string
	}{
		{brokers: 1, topicRF: 1, topicMinISR: "1", brokerDefaultRF: "1", brokerMinISR: "1"},
		{brokers: 3, topicRF: 3, topicMinISR: "2", brokerDefaultRF: "3", brokerMinISR: "2"},
		{brokers: 3, topicRF: 1, topicMinISR: "1", brokerDefaultRF: "3", brokerMinISR: "2"},
	} {
		t.Run(fmt.Sprintf("%d brokers rf %d", tt.brokers, tt.topicRF), func(t *testing.T) {
			c := brokertest.Start(t, tt.brokers)
			c.CreateTopic("t", 1, tt.topicRF, nil)
			adm := c.Admin()
			ctx := ctxT(t)
			tcs, err := adm.DescribeTopicConfigs(ctx, "t")
			if err != nil {
				t.Fatal(err)
			}
			rc, err := tcs.On("t", nil)
			if err != nil || rc.Err != nil {
				t.Fatalf("describe topic: %v %v", err, rc.Err)
			}
			if !hasConfig(rc.Configs, "min.insync.replicas", tt.topicMinISR) {
				t.Fatalf("topic of %d replicas: min.insync.replicas not %s in %+v", tt.topicRF, tt.topicMinISR, rc.Configs)
			}
			for i := range c.Brokers {
				id := broker.KafkaNodeID(c.Configs[i].NodeID)
				bcs, err := adm.DescribeBrokerConfigs(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				rc, err := bcs.On(strconv.Itoa(int(id)), nil)
				if err != nil || rc.Err != nil {
					t.Fatalf("describe broker %d: %v %v", id, err, rc.Err)
				}
				if !hasConfig(rc.Configs, "default.replication.factor", tt.brokerDefaultRF) ||
					!hasConfig(rc.Configs, "min.insync.replicas", tt.brokerMinISR) {
					t.Fatalf("broker %d of %d: want default.replication.factor %s and min.insync.replicas %s in %+v",
						id, tt.brokers, tt.brokerDefaultRF, tt.brokerMinISR, rc.Configs)
				}
			}
			// A topic made with the broker's default factor gets what it said.
			res, err := adm.CreateTopic(ctx, 1, -1, nil, "default-rf")
			if err == nil {
				err = res.Err
			}
			if err != nil {
				t.Fatal(err)
			}
			ti, err := c.Brokers[0].Topic("default-rf")
			if err != nil || strconv.Itoa(len(ti.Partitions[0].Replicas)) != tt.brokerDefaultRF {
				t.Fatalf("topic made with the default factor: %v, replicas %v, want %s", err, ti.Partitions, tt.brokerDefaultRF)
			}
		})
	}
}

// The controller id a broker answers is never -1, not even in the first
// Metadata a broker answers, before it has learnt of an election: clients
// such as librdkafka's admin client never ask again after a -1. A broker
// that knows of no controller names itself.
func TestFirstMetadataNamesAListedController(t *testing.T) {
	check := func(b *broker.Broker, when string) {
		t.Helper()
		conn := dialRaw(t, b)
		for _, v := range []int16{12, 1} {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = v
			r := conn.send(req).(*kmsg.MetadataResponse)
			listed := slices.ContainsFunc(r.Brokers, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == r.ControllerID })
			if r.ControllerID < 0 || !listed {
				t.Fatalf("%s, Metadata v%d: controller %d, brokers %+v: want a listed broker", when, v, r.ControllerID, r.Brokers)
			}
		}
	}
	for range 3 {
		c := brokertest.New(t, 1)
		c.StartNode(0) // no wait for an election: dial as soon as Start returns
		check(c.Brokers[0], "fresh")
		// Restarted, it replays metadata that names its previous process.
		c.Restart(0)
		check(c.Brokers[0], "restarted")
	}
}

// DescribeLogDirs reports the data directory, its volume, and each
// replica's size as the files on disk hold it; a request naming
// partitions gets only those.
func TestDescribeLogDirsReportsSizes(t *testing.T) {
	c, b := startOne(t)
	c.CreateTopic("sized", 2, 1, nil)
	cl := client(t, b, kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	ctx := ctxT(t)
	for i := range 100 {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "sized", Partition: 1, Value: []byte(strings.Repeat("x", 1000) + strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	dirs, err := admin(t, b).DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var onDisk int64
	logs, _ := filepath.Glob(filepath.Join(c.Configs[0].DataDir, "sized-1", "*.log"))
	for _, f := range logs {
		if fi, err := os.Stat(f); err == nil {
			onDisk += fi.Size()
		}
	}
	seen := 0
	dirs.Each(func(d kadm.DescribedLogDir) {
		seen++
		if d.Err != nil || d.Dir != c.Configs[0].DataDir || d.TotalBytes <= 0 || d.UsableBytes <= 0 || d.UsableBytes > d.TotalBytes {
			t.Errorf("log dir %+v", d)
		}
		p1, ok := d.Topics.Lookup("sized", 1)
		p0, ok0 := d.Topics.Lookup("sized", 0)
		if !ok || !ok0 || p1.Size != onDisk || p1.Size < 100*1000 || p0.Size != 0 {
			t.Errorf("sizes: partition 1 %d (files %d), partition 0 %d", p1.Size, onDisk, p0.Size)
		}
	})
	if seen != 1 {
		t.Fatalf("%d log dirs, want 1", seen)
	}
	// Only what is asked for.
	req := kmsg.NewPtrDescribeLogDirsRequest()
	rt := kmsg.NewDescribeLogDirsRequestTopic()
	rt.Topic, rt.Partitions = "sized", []int32{0}
	req.Topics = []kmsg.DescribeLogDirsRequestTopic{rt}
	for v := int16(0); v <= 4; v++ {
		req.Version = v
		resp := dialRaw(t, b).send(req).(*kmsg.DescribeLogDirsResponse)
		if len(resp.Dirs) != 1 || len(resp.Dirs[0].Topics) != 1 || len(resp.Dirs[0].Topics[0].Partitions) != 1 ||
			resp.Dirs[0].Topics[0].Partitions[0].Partition != 0 {
			t.Errorf("v%d filtered: %+v", v, resp.Dirs)
		}
	}
}
