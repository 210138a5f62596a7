package broker_test

import (
	"log/slog"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
)

// BenchmarkFetchIdlePartitions measures a fetch round over 1,000
// partitions with nothing new, as a follower or consumer of many quiet
// partitions makes again and again: without a session every round names
// every partition and is answered for every partition; in a session
// (KIP-227) a round names none and is answered with none.
//
//	go test -run x -bench FetchIdlePartitions -benchtime 2000x ./broker/
func BenchmarkFetchIdlePartitions(b *testing.B) {
	const partitions = 1000
	c := brokertest.Start(b, 1, func(_ int, cfg *broker.Config) {
		cfg.OffsetsPartitions = 1
		cfg.Logger = slog.New(slog.DiscardHandler)
		cfg.Log.MaxIndexBytes = 4096
	})
	br := c.Brokers[0]
	if _, err := c.Admin().CreateTopic(ctxT(b), partitions, 1, nil, "idle"); err != nil {
		b.Fatal(err)
	}
	waitLeading(b, br, "idle")
	all := map[int32]int64{}
	for p := range int32(partitions) {
		all[p] = 0
	}
	run := func(b *testing.B, conn *rawConn, next func() *kmsg.FetchRequest, wantPartitions int) {
		var req *kmsg.FetchRequest
		var resp *kmsg.FetchResponse
		for b.Loop() {
			req = next()
			req.MaxWaitMillis, req.MinBytes = 0, 0
			resp = conn.send(req).(*kmsg.FetchResponse)
			if resp.ErrorCode != 0 || len(answered(resp)) != wantPartitions {
				b.Fatalf("error %d, %d partitions answered, want %d", resp.ErrorCode, len(answered(resp)), wantPartitions)
			}
		}
		b.ReportMetric(float64(len(req.AppendTo(nil))), "request-B")
		b.ReportMetric(float64(len(resp.AppendTo(nil))), "response-B")
	}
	b.Run("full", func(b *testing.B) {
		req := sessionFetch(0, -1, "idle", all)
		run(b, dialRaw(b, br), func() *kmsg.FetchRequest { return req }, partitions)
	})
	b.Run("session", func(b *testing.B) {
		conn := dialRaw(b, br)
		id := conn.send(sessionFetch(0, 0, "idle", all)).(*kmsg.FetchResponse).SessionID
		epoch := int32(0)
		run(b, conn, func() *kmsg.FetchRequest {
			epoch++
			return sessionFetch(id, epoch, "idle", nil)
		}, 0)
	})
}
