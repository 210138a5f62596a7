package broker_test

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/mlog/mlog/broker/brokertest"
	"github.com/mlog/mlog/internal/testutil"
)

func TestClusterReplicatesRF3(t *testing.T) {
	c := brokertest.Start(t, 3)
	ctx := ctxT(t)
	if res, err := c.Admin().CreateTopic(ctx, 1, 3, nil, "orders"); err != nil || res.Err != nil {
		t.Fatalf("create: %v %v", err, res.Err)
	}
	testutil.Eventually(t, "a full ISR", func() bool { _, isr := c.PartitionInfo("orders", 0); return len(isr) == 3 })
	cl := c.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	want := values(200, "o")
	produceValues(t, cl, "orders", want)
	// Every replica ends up with the same records.
	for i := range c.Brokers {
		testutil.Eventually(t, fmt.Sprintf("broker %d to have every record", i+1), func() bool {
			p := replica(c, i, "orders", 0)
			return p != nil && p.LogEndOffset() == int64(len(want)) && p.HighWatermark() == int64(len(want))
		})
	}
	got := consumeCluster(t, c, "orders", len(want))
	checkRecords(t, got, want)
}
