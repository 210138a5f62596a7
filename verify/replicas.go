package verify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errFollowerReadsNotServed means a replica that is not the leader refused
// a consumer's fetch: the cluster does not serve KIP-392 follower reads.
var errFollowerReadsNotServed = errors.New("verify: follower reads not served")

// The replica check's outcomes, as Report.ReplicaCheck says them.
const (
	replicaCheckDone       = "done"
	replicaCheckNotServed  = "skipped: follower reads not served"
	replicaCheckSkipPrefix = "skipped: "
)

// readReplicas reads every partition from every one of its replicas,
// directly, with consumer Fetch requests (replica id -1, v11+ for KIP-392):
// a follower that serves them answers from its own log, up to its own high
// watermark. It starts each read at from (the final read's log starts).
// The check is skipped when a follower refuses, or a replica cannot be read
// before ctx ends.
func readReplicas(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, from map[int32]int64) (map[int32]map[int32]*PartitionLog, string) {
	var md kadm.Metadata
	for {
		var err error
		md, err = adm.Metadata(ctx, topic)
		if err == nil {
			err = md.Topics[topic].Err
		}
		if err == nil {
			break
		}
		if werr := wait(ctx, retryBackoff); werr != nil {
			return nil, replicaCheckSkipPrefix + "no metadata: " + err.Error()
		}
	}
	td := md.Topics[topic]
	out := map[int32]map[int32]*PartitionLog{}
	var problems []string
	for _, p := range slices.Sorted(maps.Keys(td.Partitions)) {
		out[p] = map[int32]*PartitionLog{}
		for _, id := range slices.Sorted(slices.Values(td.Partitions[p].Replicas)) {
			pl, err := readReplica(ctx, cl, td, p, id, from[p])
			if errors.Is(err, errFollowerReadsNotServed) {
				return nil, replicaCheckNotServed
			}
			if err != nil {
				problems = append(problems, fmt.Sprintf("broker %d partition %d: %v", id, p, err))
				continue
			}
			out[p][id] = pl
		}
	}
	if len(problems) > 0 {
		if len(problems) > 3 {
			problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
		}
		return nil, replicaCheckSkipPrefix + strings.Join(problems, "; ")
	}
	return out, replicaCheckDone
}

// readReplica fetches one partition from broker id from offset start up to
// that broker's high watermark, retrying retriable errors until ctx ends.
func readReplica(ctx context.Context, cl *kgo.Client, td kadm.TopicDetail, partition, id int32, start int64) (*PartitionLog, error) {
	pl := &PartitionLog{LogStartOffset: start, HighWatermark: -1, Records: map[int64]string{}}
	offset := start
	var lastErr error
	for {
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.ReplicaState.ID = -1
		req.MaxWaitMillis = 100
		req.MinBytes = 1
		req.MaxBytes = 8 << 20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = td.Topic
		rt.TopicID = td.ID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = partition
		rp.FetchOffset = offset
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = 4 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)

		kresp, err := cl.Broker(int(id)).Request(ctx, req)
		if err == nil {
			var resp *kmsg.FetchResponse
			resp = kresp.(*kmsg.FetchResponse)
			err = kerr.ErrorForCode(resp.ErrorCode)
			if err == nil {
				var got *kmsg.FetchResponseTopicPartition
				for i := range resp.Topics {
					for j := range resp.Topics[i].Partitions {
						if resp.Topics[i].Partitions[j].Partition == partition {
							got = &resp.Topics[i].Partitions[j]
						}
					}
				}
				if got == nil {
					err = fmt.Errorf("fetch response without partition %d", partition)
				} else {
					var done bool
					offset, done, err = absorb(pl, td.Topic, got, offset)
					if done {
						return pl, nil
					}
				}
			}
		}
		if errors.Is(err, kerr.NotLeaderForPartition) {
			return nil, fmt.Errorf("%w (Fetch v%d)", errFollowerReadsNotServed, req.GetVersion())
		}
		if err != nil {
			lastErr = err
			if !kerr.IsRetriable(err) && !isConnErr(err) {
				return nil, err
			}
		}
		if ctx.Err() != nil {
			return nil, errors.Join(lastErr, ctx.Err())
		}
		if err != nil {
			if werr := wait(ctx, retryBackoff); werr != nil {
				return nil, errors.Join(lastErr, werr)
			}
		}
	}
}

// absorb adds one fetched partition's records to pl and returns the next
// offset to fetch, and whether pl now reaches the replica's high watermark.
func absorb(pl *PartitionLog, topic string, rp *kmsg.FetchResponseTopicPartition, offset int64) (int64, bool, error) {
	if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
		return offset, false, err
	}
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: offset, Topic: topic, Partition: rp.Partition}, rp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return offset, false, fp.Err
	}
	for _, r := range fp.Records {
		pl.Records[r.Offset] = string(r.Value)
	}
	pl.HighWatermark = rp.HighWatermark
	if next < offset {
		next = offset
	}
	return next, next >= rp.HighWatermark, nil
}

// isConnErr reports an error of the connection rather than of the request:
// a broker restarting.
func isConnErr(err error) bool {
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.As(err, new(*kerr.Error))
}
