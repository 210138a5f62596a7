package broker_test

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// /metrics, /healthz and /readyz on a broker that produced and served
// records: the counters say what happened.
func TestMetricsEndpoint(t *testing.T) {
	_, b := startOne(t, func(_ int, cfg *broker.Config) { cfg.HTTPAddr = "127.0.0.1:0" })
	base := "http://" + b.HTTPAddr().String()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, base+path); code != http.StatusOK {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	// Go's profiler is there for profiling a broker under load.
	if code, body := httpGet(t, base+"/debug/pprof/heap?debug=1"); code != http.StatusOK || !strings.Contains(body, "heap profile") {
		t.Fatalf("/debug/pprof/heap: %d %.200s", code, body)
	}
	produceValues(t, client(t, b, kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(0)), "orders", values(10, "v"))
	consumeAll(t, b, "orders", 10)
	// Bytes out are counted once a fetch response is written: the client
	// may read the response first.
	testutil.Eventually(t, "the consumer's fetches counted", func() bool {
		in, _ := metricValue(t, b, "mlog_topic_bytes_in_total", "topic", "orders")
		out, _ := metricValue(t, b, "mlog_topic_bytes_out_total", "topic", "orders")
		return in > 0 && out >= in
	})

	code, body := httpGet(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sample := func(re string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics lacks %s:\n%.3000s", re, body)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	if v := sample(`mlog_topic_records_in_total\{topic="orders"\}`); v != 10 {
		t.Fatalf("records in: %v, want 10", v)
	}
	in := sample(`mlog_topic_bytes_in_total\{topic="orders"\}`)
	if out := sample(`mlog_topic_bytes_out_total\{topic="orders"\}`); in <= 0 || out < in {
		t.Fatalf("bytes in %v, out %v: a consumer read every batch", in, out)
	}
	// A request is timed once its response is written: the client may
	// read the response first.
	testutil.Eventually(t, "the produce requests timed", func() bool {
		v, ok := metricValue(t, b, "mlog_request_duration_seconds", "api", "Produce")
		return ok && v >= 1
	})
	if v := sample(`mlog_partition_high_watermark\{partition="0",topic="orders"\}`); v != 10 {
		t.Fatalf("high watermark: %v", v)
	}
	if v := sample(`mlog_under_replicated_partitions`); v != 0 {
		t.Fatalf("under-replicated: %v", v)
	}
	if v := sample(`mlog_controller_active`); v != 1 {
		t.Fatalf("controller: %v", v)
	}
}

// A follower dies: its leader shrinks the ISR and reports the partition
// under-replicated; it comes back and the ISR expands again.
func TestMetricsISRShrinkAndExpand(t *testing.T) {
	c := brokertest.Start(t, 3)
	c.CreateTopic("m", 1, 3, nil)
	testutil.Eventually(t, "a full ISR", func() bool { _, isr := c.PartitionInfo("m", 0); return len(isr) == 3 })
	leader, _ := c.PartitionInfo("m", 0)
	li := c.Index(leader)
	fi := (li + 1) % 3
	lb := c.Brokers[li]
	c.Kill(fi)
	testutil.Eventually(t, "the ISR to shrink", func() bool { _, isr := c.PartitionInfo("m", 0); return len(isr) == 2 })
	testutil.Eventually(t, "the leader to count the shrink", func() bool {
		shrinks, _ := metricValue(t, lb, "mlog_isr_shrinks_total")
		under, _ := metricValue(t, lb, "mlog_under_replicated_partitions")
		return shrinks >= 1 && under == 1
	})
	c.StartNode(fi)
	testutil.Eventually(t, "the ISR to expand", func() bool { _, isr := c.PartitionInfo("m", 0); return len(isr) == 3 })
	testutil.Eventually(t, "the leader to count the expand", func() bool {
		expands, _ := metricValue(t, lb, "mlog_isr_expands_total")
		under, _ := metricValue(t, lb, "mlog_under_replicated_partitions")
		return expands >= 1 && under == 0
	})
}
