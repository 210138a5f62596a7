package brokertest_test

import (
	"testing"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

// What tests rely on: a restarted broker comes back on the addresses it
// first took, with its data; a wiped one comes back empty into the same
// cluster and learns the metadata again; Index and Seeds name the brokers
// by Kafka id and running address.
func TestRestartAndWipe(t *testing.T) {
	c := brokertest.Start(t, 3)
	for i, cfg := range c.Configs {
		if id := broker.KafkaNodeID(cfg.NodeID); c.Index(id) != i {
			t.Fatalf("Index(%d) = %d, want %d", id, c.Index(id), i)
		}
	}
	if c.Index(99) != -1 {
		t.Fatal("Index of an unknown id is not -1")
	}
	c.CreateTopic("keep", 1, 3, nil)
	addr, serf, raft := c.Brokers[1].Addr().String(), c.Brokers[1].SerfAddr(), c.Brokers[1].RaftAddr()
	c.Restart(1)
	if b := c.Brokers[1]; b.Addr().String() != addr || b.SerfAddr() != serf || b.RaftAddr() != raft {
		t.Fatalf("restarted on %s/%s/%s, first on %s/%s/%s", b.Addr(), b.SerfAddr(), b.RaftAddr(), addr, serf, raft)
	}
	c.WaitBrokers(3)
	testutil.Eventually(t, "the restarted broker to replay its metadata", func() bool {
		_, err := c.Brokers[1].Topic("keep")
		return err == nil
	})

	c.Kill(2)
	if got := len(c.Seeds()); got != 2 {
		t.Fatalf("%d seeds with one broker down, want 2", got)
	}
	c.Wipe(2)
	c.StartNode(2)
	c.WaitBrokers(3)
	testutil.Eventually(t, "the wiped broker to learn the metadata again", func() bool {
		_, err := c.Brokers[2].Topic("keep")
		return err == nil
	})
	if got := len(c.Seeds()); got != 3 {
		t.Fatalf("%d seeds, want 3", got)
	}
}
