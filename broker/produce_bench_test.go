package broker_test

import (
	"crypto/rand"
	"fmt"
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
	for _, parts := range []int32{1, 16, 48} {
		// One ~1 MB batch per partition: 1 MB frames, 16 MB frames like
		// a producer's request spread over many partitions, and 48 MB
		// frames, past what a connection keeps (maxReusedFrame) so each
		// is allocated anew. With 48, run fewer (-benchtime 40x): each
		// op writes 48 MB.
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) { benchProduceRequests(b, parts) })
	}
}

func benchProduceRequests(b *testing.B, parts int32) {
	c, br := startOne(b, func(_ int, cfg *broker.Config) { cfg.SyncAcks = false })
	c.CreateTopic("bench", parts, 1, nil)
	vals := make([][]byte, 1000) // just under message.max.bytes (1 MiB)
	for i := range vals {
		vals[i] = make([]byte, 1024)
		_, _ = rand.Read(vals[i])
	}
	records := batchtest.Build(batchtest.Spec{Values: vals, Timestamp: 1_700_000_000_000})
	conn := dialRaw(b, br)
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, 1, 5000
	b.SetBytes(int64(len(records)) * int64(parts))
	for b.Loop() {
		t := kmsg.ProduceRequestTopic{Topic: "bench"}
		for p := range parts {
			t.Partitions = append(t.Partitions, kmsg.ProduceRequestTopicPartition{Partition: p, Records: records})
		}
		req.Topics = []kmsg.ProduceRequestTopic{t}
		for _, sp := range conn.send(req).(*kmsg.ProduceResponse).Topics[0].Partitions {
			if sp.ErrorCode != 0 {
				b.Fatalf("produce: error %d", sp.ErrorCode)
			}
		}
	}
}
