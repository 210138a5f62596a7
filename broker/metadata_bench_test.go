package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/broker"
	"github.com/mlog/mlog/broker/brokertest"
)

// BenchmarkRequestsVsClusterSize measures a one-topic Metadata request and
// a consumer-group Heartbeat on a one-node cluster holding 10 and 1,000
// topics: neither may grow with the size of the cluster metadata (both
// once copied the whole state per request).
//
//	go test -run x -bench RequestsVsClusterSize -benchtime 2000x ./broker/
func BenchmarkRequestsVsClusterSize(b *testing.B) {
	for _, topics := range []int{10, 1000} {
		b.Run(fmt.Sprintf("topics=%d", topics), func(b *testing.B) {
			c := brokertest.Start(b, 1, func(_ int, cfg *broker.Config) {
				cfg.OffsetsPartitions = 1
				cfg.Logger = slog.New(slog.DiscardHandler) // setup logs a line per topic
				cfg.Log.MaxIndexBytes = 4096
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			adm := c.Admin()
			names := make([]string, topics)
			for i := range names {
				names[i] = fmt.Sprintf("t-%04d", i)
			}
			for i := 0; i < topics; i += 100 {
				res, err := adm.CreateTopics(ctx, 1, 1, nil, names[i:min(i+100, topics)]...)
				if err != nil {
					b.Fatal(err)
				}
				if err := res.Error(); err != nil {
					b.Fatal(err)
				}
			}
			cl := c.Client(kgo.ConsumerGroup("bench"), kgo.ConsumeTopics(names[0]))
			member, gen := joinGroup(b, ctx, cl)

			b.Run("metadata", func(b *testing.B) {
				req := kmsg.NewPtrMetadataRequest()
				rt := kmsg.NewMetadataRequestTopic()
				rt.Topic = kmsg.StringPtr(names[topics/2])
				req.Topics = []kmsg.MetadataRequestTopic{rt}
				for b.Loop() {
					resp, err := req.RequestWith(ctx, cl)
					if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
						b.Fatalf("metadata: %v", err)
					}
				}
			})
			b.Run("heartbeat", func(b *testing.B) {
				req := kmsg.NewPtrHeartbeatRequest()
				req.Group, req.MemberID, req.Generation = "bench", member, gen
				for b.Loop() {
					resp, err := req.RequestWith(ctx, cl)
					if err != nil {
						b.Fatal(err)
					}
					if err := kerr.ErrorForCode(resp.ErrorCode); err != nil && err != kerr.RebalanceInProgress {
						b.Fatalf("heartbeat: %v", err)
					}
				}
			})
		})
	}
}

// joinGroup waits until cl is a member of its group and returns its
// member id and generation.
func joinGroup(b *testing.B, ctx context.Context, cl *kgo.Client) (string, int32) {
	b.Helper()
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		cl.PollRecords(pctx, 1) // drives the join
		cancel()
		if member, gen := cl.GroupMetadata(); member != "" && gen > 0 {
			return member, gen
		}
	}
	b.Fatal("consumer never joined its group")
	return "", -1
}
