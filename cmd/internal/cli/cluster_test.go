package cli

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// A cluster grown from three brokers to four through the CLI: `cluster
// rebalance` prints a plan and changes nothing, then with --execute spreads
// replicas and preferred leaders and records stay readable; `topic
// describe` agrees with kadm's metadata and offsets; `topic alter-config`
// and `topic delete-records` take effect; `broker decommission` empties a
// voting broker, which leaves the Raft configuration while the new broker
// takes its vote; `cluster describe` shows the result.
func TestGrowRebalanceDecommissionCommands(t *testing.T) {
	c := brokertest.New(t, 4)
	for i := range 3 {
		c.StartNode(i)
	}
	c.WaitBrokers(3)
	c.CreateTopic("grow", 6, 3, nil)
	cl := c.Client()
	var recs []*kgo.Record
	for i := range 600 {
		recs = append(recs, &kgo.Record{Topic: "grow", Key: []byte(strconv.Itoa(i)), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	c.StartNode(3)
	c.WaitBrokers(4)
	addrs := strings.Join(c.Seeds(), ",")
	adm := c.Admin()
	replicasOn := func(id int32) int {
		md, err := adm.Metadata(ctx, "grow")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range md.Topics["grow"].Partitions {
			if slices.Contains(p.Replicas, id) {
				n++
			}
		}
		return n
	}
	if replicasOn(4) != 0 {
		t.Fatal("the new broker holds replicas before any rebalance")
	}

	out, _, err := runCLI(t, "cluster", "rebalance", "--addrs", addrs)
	if err != nil || !strings.Contains(out, "dry run") || !strings.Contains(out, "grow-") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if replicasOn(4) != 0 {
		t.Fatal("a dry run moved replicas")
	}
	out, _, err = runCLI(t, "cluster", "rebalance", "--addrs", addrs, "--execute", "--timeout", "2m")
	if err != nil || !strings.Contains(out, "done") {
		t.Fatalf("rebalance: %v\n%s", err, out)
	}
	md, err := adm.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	load := map[int32]int{}
	for _, td := range md.Topics {
		for _, p := range td.Partitions {
			for _, r := range p.Replicas {
				load[r]++
			}
		}
	}
	lo, hi := 1<<30, 0
	for id := int32(1); id <= 4; id++ {
		lo, hi = min(lo, load[id]), max(hi, load[id])
	}
	if hi-lo > 1 || replicasOn(4) == 0 {
		t.Fatalf("replicas per broker after the rebalance: %v", load)
	}
	if out, _, err := runCLI(t, "cluster", "rebalance", "--addrs", addrs); err != nil || !strings.Contains(out, ": 0 to change") {
		t.Errorf("a second plan after the rebalance: %v\n%s", err, out)
	}

	// topic describe agrees with kadm.
	out, _, err = runCLI(t, "topic", "describe", "--addrs", addrs, "--topic", "grow")
	if err != nil {
		t.Fatal(err)
	}
	md, _ = adm.Metadata(ctx, "grow")
	ends, _ := adm.ListEndOffsets(ctx, "grow")
	for _, p := range md.Topics["grow"].Partitions {
		end, _ := ends.Lookup("grow", p.Partition)
		want := fmt.Sprintf("partition=%d leader=%d epoch=%d replicas=%s isr=%s start=0 end=%d size=",
			p.Partition, p.Leader, p.LeaderEpoch, ids(p.Replicas), ids(p.ISR), end.Offset)
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(out, "retention.ms=") || !strings.Contains(out, "replication-factor=3") {
		t.Errorf("describe lacks configs or the replication factor:\n%s", out)
	}

	if out, _, err := runCLI(t, "topic", "alter-config", "--addrs", addrs, "--topic", "grow", "--set", "retention.ms=86400000", "--set", "segment.bytes=1048576"); err != nil {
		t.Fatalf("alter-config: %v %s", err, out)
	}
	testutil.Eventually(t, "the altered configs described", func() bool {
		out, _, _ := runCLI(t, "topic", "describe", "--addrs", addrs, "--topic", "grow")
		return strings.Contains(out, "retention.ms=86400000 (topic)") && strings.Contains(out, "segment.bytes=1048576 (topic)")
	})
	if _, _, err := runCLI(t, "topic", "alter-config", "--addrs", addrs, "--topic", "grow", "--set", "retention.ms=often"); err == nil || !strings.Contains(err.Error(), "INVALID_CONFIG") {
		t.Errorf("a bad value: %v", err)
	}
	out, _, err = runCLI(t, "topic", "delete-records", "--addrs", addrs, "--topic", "grow", "--partition", "0", "--before", "5")
	if err != nil || !strings.Contains(out, "grow-0 now starts at 5") {
		t.Fatalf("delete-records: %v %s", err, out)
	}
	starts, _ := adm.ListStartOffsets(ctx, "grow")
	if o, _ := starts.Lookup("grow", 0); o.Offset != 5 {
		t.Errorf("grow-0 starts at %d after delete-records", o.Offset)
	}

	// Decommission broker 2, a voter: node-4 (a non-voter) takes its vote.
	before, err := c.Brokers[0].RaftServers()
	if err != nil || !before["node-2"] || before["node-4"] {
		t.Fatalf("raft configuration before: %v %v", before, err)
	}
	out, _, err = runCLI(t, "broker", "decommission", "2", "--addrs", addrs, "--execute", "--timeout", "2m")
	if err != nil || !strings.Contains(out, "left the Raft configuration") {
		t.Fatalf("decommission: %v\n%s", err, out)
	}
	testutil.Eventually(t, "no replica on broker 2 in any broker's metadata", func() bool {
		md, err := adm.Metadata(ctx)
		if err != nil {
			return false
		}
		for _, td := range md.Topics {
			for _, p := range td.Partitions {
				if slices.Contains(p.Replicas, 2) {
					return false
				}
			}
		}
		return true
	})
	testutil.Eventually(t, "node-2 out of Raft, node-4 voting", func() bool {
		s, err := c.Brokers[0].RaftServers()
		_, has2 := s["node-2"]
		return err == nil && !has2 && s["node-4"]
	})
	// Every broker learns of the decommission from the metadata.
	testutil.Eventually(t, "cluster describe without node-2", func() bool {
		out, _, err = runCLI(t, "cluster", "describe", "--addrs", addrs)
		return err == nil && !regexp.MustCompile(`node-2 at`).MatchString(out) && strings.Contains(out, "brokers=3")
	})
	// Every record is still there.
	consumer := c.Client(kgo.ConsumeTopics("grow"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < 595 && ctx.Err() == nil {
		got += len(consumer.PollFetches(ctx).Records())
	}
	if got != 595 {
		t.Fatalf("read %d records after the moves, want 595 (600 less 5 deleted)", got)
	}
}
