package broker_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// Close answers requests in flight: a long-polling fetch gets its (empty)
// response at once instead of a dropped connection, and Close does not wait
// out the poll's 30 s.
func TestCloseAnswersInFlightLongPoll(t *testing.T) {
	_, b := startOne(t)
	produceValues(t, client(t, b, kgo.AllowAutoTopicCreation()), "sd", []string{"x"})
	c := dialRaw(t, b)
	fr := kmsg.NewPtrFetchRequest()
	fr.Version, fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = 12, -1, 30_000, 1, 1<<20
	fr.Topics = []kmsg.FetchRequestTopic{{Topic: "sd", Partitions: []kmsg.FetchRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LastFetchedEpoch: -1, FetchOffset: 1, PartitionMaxBytes: 1 << 20}}}}
	got := make(chan *kmsg.FetchResponse, 1)
	go func() { got <- c.send(fr).(*kmsg.FetchResponse) }()
	testutil.Eventually(t, "the fetch to reach the broker", func() bool { return broker.ServerStats(b).InFlight == 1 })
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case resp := <-got:
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.HighWatermark != 1 || len(p.RecordBatches) != 0 {
			t.Fatalf("in-flight fetch answered with %+v", p)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("in-flight fetch not answered")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Close took %v: it waited out the long poll", d)
	}
}

// A start step that fails on a busy port undoes the steps before it:
// Close afterwards neither panics nor hides the error, for each listener.
func TestStartOnBusyPortUnwinds(t *testing.T) {
	for _, which := range []string{"raft", "kafka", "serf"} {
		t.Run(which, func(t *testing.T) {
			busy, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer busy.Close()
			cfg := brokertest.New(t, 1).Configs[0]
			switch which {
			case "raft":
				cfg.Cluster.RaftAddr = busy.Addr().String()
			case "kafka":
				cfg.ListenAddr = busy.Addr().String()
			case "serf":
				cfg.Cluster.SerfAddr = busy.Addr().String()
			}
			b, err := broker.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = b.Start()
			if err == nil || !strings.Contains(err.Error(), "address already in use") {
				t.Fatalf("start with the %s port taken: %v, want address already in use", which, err)
			}
			if err := b.Close(); err != nil {
				t.Fatalf("close after the failed start: %v", err)
			}
		})
	}
}
