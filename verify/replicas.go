package verify

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

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

// catchUpWait is how long a replica whose high watermark is still below
// the final read's is given to catch up (a broker restarted by a fault
// harness), so that the comparison covers as much of the log as it can.
const catchUpWait = 10 * time.Second

// notServedAfter is how long a replica must refuse a consumer's fetch as
// not the leader before the cluster counts as not serving follower reads.
const notServedAfter = 3 * time.Second

// readReplicas reads every partition from every one of its replicas,
// directly, with consumer Fetch requests (replica id -1, v11+ for KIP-392):
// a follower that serves them answers from its own log, up to its own high
// watermark. Each read goes from the final read's log start up to the
// replica's high watermark, waiting a while for it to reach the final
// read's (final). The check is skipped when a follower refuses, or a
// replica cannot be read before ctx ends.
func readReplicas(ctx context.Context, cl *kgo.Client, adm *kadm.Client, topic string, final map[int32]*PartitionLog) (map[int32]map[int32]*PartitionLog, string) {
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
			var start, target int64
			if f := final[p]; f != nil {
				start, target = f.LogStartOffset, f.HighWatermark
			}
			pl, err := readReplica(ctx, cl, td, p, id, start, target)
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
// Once it has read up to the replica's high watermark it keeps fetching
// while that is below target, for up to catchUpWait. A replica answering
// NOT_LEADER_OR_FOLLOWER for notServedAfter does not serve follower reads
// (a shorter spell is a broker still taking up its replicas).
func readReplica(ctx context.Context, cl *kgo.Client, td kadm.TopicDetail, partition, id int32, start, target int64) (*PartitionLog, error) {
	pl := &PartitionLog{LogStartOffset: start, HighWatermark: -1, Records: map[int64]string{}}
	offset := start
	began := time.Now()
	caughtUp := false // pl holds everything up to the replica's high watermark
	var lastErr error
	for {
		req := fetchRequest(td, partition, offset)
		kresp, err := cl.Broker(int(id)).Request(ctx, req)
		if err == nil {
			resp := kresp.(*kmsg.FetchResponse)
			err = kerr.ErrorForCode(resp.ErrorCode)
			if err == nil {
				var done bool
				offset, done, err = absorb(pl, td.Topic, findPartition(resp, partition), offset)
				if err == nil {
					caughtUp = done
				}
				if caughtUp && (pl.HighWatermark >= target || time.Since(began) > catchUpWait) {
					return pl, nil
				}
			}
		}
		if errors.Is(err, kerr.NotLeaderForPartition) && time.Since(began) > notServedAfter {
			return nil, fmt.Errorf("%w (Fetch v%d)", errFollowerReadsNotServed, req.GetVersion())
		}
		if err != nil {
			lastErr = err
			if !kerr.IsRetriable(err) && !isConnErr(err) {
				return nil, err
			}
		}
		if ctx.Err() != nil {
			if caughtUp {
				return pl, nil // consistent up to its high watermark, if short of target
			}
			return nil, errors.Join(lastErr, ctx.Err())
		}
		if err != nil {
			if werr := wait(ctx, retryBackoff); werr != nil {
				return nil, errors.Join(lastErr, werr)
			}
		}
	}
}

// fetchRequest is a consumer's fetch (replica id -1, no session) of one
// partition from offset. Kafka picks the replica id from ReplicaID up to
// v14 and from ReplicaState after; the topic goes by name up to v12 and by
// id after.
func fetchRequest(td kadm.TopicDetail, partition int32, offset int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.ReplicaState.ID = -1
	req.MaxWaitMillis = 500
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
	return req
}

// findPartition is partition's answer in resp, or nil.
func findPartition(resp *kmsg.FetchResponse, partition int32) *kmsg.FetchResponseTopicPartition {
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			if resp.Topics[i].Partitions[j].Partition == partition {
				return &resp.Topics[i].Partitions[j]
			}
		}
	}
	return nil
}

// absorb adds one fetched partition's records to pl and returns the next
// offset to fetch, and whether pl now reaches the replica's high watermark.
func absorb(pl *PartitionLog, topic string, rp *kmsg.FetchResponseTopicPartition, offset int64) (int64, bool, error) {
	if rp == nil {
		return offset, false, errors.New("fetch response without the partition asked for")
	}
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
