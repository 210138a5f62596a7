package broker_test

import (
	"crypto/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

// BenchmarkProduceRequests sends acks=1 Produce requests of one ~1 MB
// batch (1 KiB random values) over one connection to a one-node cluster,
// as a pipelined producer's requests arrive. B/op and allocs/op count the
// broker too (it runs in this process): what reading, decoding and
// appending one request costs it.
//
//	go test -run x -bench ProduceRequests -benchmem -benchtime 500x ./broker/
func BenchmarkProduceRequests(b *testing.B) {
	c, br := startOne(b, func(_ int, cfg *broker.Config) { cfg.SyncAcks = false })
	c.CreateTopic("bench", 1, 1, nil)
	vals := make([][]byte, 1000) // just under message.max.bytes (1 MiB)
	for i := range vals {
		vals[i] = make([]byte, 1024)
		_, _ = rand.Read(vals[i])
	}
	records := batchtest.Build(batchtest.Spec{Values: vals, Timestamp: 1_700_000_000_000})
	conn := dialRaw(b, br)
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, 1, 5000
	b.SetBytes(int64(len(records)))
	for b.Loop() {
		req.Topics = []kmsg.ProduceRequestTopic{{Topic: "bench", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0, Records: records}}}}
		if code := conn.send(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode; code != 0 {
			b.Fatalf("produce: error %d", code)
		}
	}
}
