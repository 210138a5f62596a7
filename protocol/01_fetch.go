package protocol

// Fetch v4-v12 (v4 is the first with v2 record batches, which librdkafka
// needs), with fetch sessions (fetch_session.go). A long poll: the reply waits up to MaxWaitMillis for MinBytes,
// woken by the backend's change notification, never by a timer loop.
// MaxBytes bounds the response and PartitionMaxBytes each partition, except
// that the first batch of the first partition with data always goes whole
// (as Kafka does, so a batch bigger than the limits is never stuck).
// Records are sent from the segment files (fetch_write.go).
//
// A follower's fetch (ReplicaID >= 0) must come from that broker's current
// incarnation (Backend.AuthorizeReplica); it reads up to the log end, moves
// the ISR and high watermark, and from v12 its LastFetchedEpoch is checked:
// a follower whose last epoch ends earlier here gets DivergingEpoch and no
// records (KIP-320/595), and truncates. A consumer's fetch from v11 may go
// to any replica (KIP-392 follower fetching) and reads up to that replica's
// high watermark; older versions go to the leader only.
//
// A follower's fetch needs CLUSTER_ACTION on the cluster, which only
// brokers hold (CLUSTER_AUTHORIZATION_FAILED); a consumer's needs READ on
// each topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage"
)

func init() { register(1, 4, 12, handleFetch) }

func handleFetch(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.FetchRequest)
	wait := time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond
	var replicaErr error
	if req.ReplicaID >= 0 {
		replicaErr = c.s.backend.AuthorizeReplica(req.ReplicaID, c.clientID)
		if replicaErr == nil && !c.allowedCluster(acl.OpClusterAction) {
			replicaErr = ErrClusterAuthorization
		}
	}
	sf := c.resolveSession(req)
	if sf.errorCode != 0 {
		return reply{fetch: func(context.Context) *fetchReply {
			return &fetchReply{version: req.Version, replica: req.ReplicaID >= 0, errorCode: sf.errorCode}
		}}, nil
	}
	return reply{fetch: func(ctx context.Context) *fetchReply {
		deadline := time.Now().Add(wait)
		recorded := map[topicPartition]bool{} // a follower's progress counts once per request
		for {
			changed := c.s.backend.Changed() // before reading: no lost wakeup
			fr := collectFetch(c, req, sf.topics, replicaErr, recorded)
			left := time.Until(deadline)
			if fr.size() >= int64(req.MinBytes) || fr.partitionErrors || left <= 0 || ctx.Err() != nil {
				sf.finish(fr)
				return fr
			}
			fr.release()
			t := time.NewTimer(left)
			select {
			case <-changed:
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}}, nil
}

// collectFetch reads every requested partition once: those the request
// names, or with a session all of the session's.
func collectFetch(c *conn, req *kmsg.FetchRequest, topics []kmsg.FetchRequestTopic, replicaErr error, recorded map[topicPartition]bool) *fetchReply {
	fr := &fetchReply{version: req.Version, replica: req.ReplicaID >= 0}
	budget := int64(req.MaxBytes)
	if req.Version < 3 || budget <= 0 {
		budget = 1<<31 - 1
	}
	first := true
	readCommitted := req.ReplicaID < 0 && req.IsolationLevel == 1
	for _, rt := range topics {
		ft := fetchTopic{name: rt.Topic}
		// An unauthorized follower or consumer learns nothing of the
		// partition, not even whether it exists.
		denied := replicaErr
		if req.ReplicaID < 0 && !c.allowedTopic(acl.OpRead, rt.Topic) {
			denied = ErrTopicAuthorization
		}
		for _, rp := range rt.Partitions {
			fp := fetchPartition{id: rp.Partition, highWatermark: -1, lastStableOffset: -1, logStartOffset: -1}
			var p *partition.Partition
			err := denied
			if err == nil {
				p, err = c.s.backend.Partition(rt.Topic, rp.Partition)
			}
			epoch := int32(-1)
			if req.Version >= 9 {
				epoch = rp.CurrentLeaderEpoch
			}
			replica := req.ReplicaID >= 0
			switch {
			case err != nil:
			case replica:
				err = p.CheckLeader(epoch)
			case req.Version >= 11:
				err = p.CheckReplica(epoch)
			default:
				err = p.CheckLeader(epoch)
			}
			if err == nil && replica && req.Version >= 12 && rp.LastFetchedEpoch >= 0 {
				if le, end := p.EndOffsetForEpoch(rp.LastFetchedEpoch); le >= 0 && (le != rp.LastFetchedEpoch || end < rp.FetchOffset) {
					// The follower's log diverges from ours after end:
					// it truncates there first, and its offset is not
					// progress.
					fp.diverging, fp.divergingEpoch, fp.divergingEndOffset = true, le, end
					fp.highWatermark = p.HighWatermark()
					fp.lastStableOffset = p.LastStableOffset()
					fp.logStartOffset = p.LogStartOffset()
					fr.partitionErrors = true // answer now
					ft.partitions = append(ft.partitions, fp)
					continue
				}
			}
			if err == nil && !replica && req.Version >= 11 && req.Rack != "" {
				if pr := c.s.backend.PreferredReadReplica(rt.Topic, rp.Partition, req.Rack); pr >= 0 && p.CheckLeader(-1) == nil {
					// A replica in the consumer's rack serves it: tell
					// it where, with no records (KIP-392).
					fp.preferred, fp.preferredReplica = true, pr
					fp.highWatermark = p.HighWatermark()
					fp.lastStableOffset = p.LastStableOffset()
					fp.logStartOffset = p.LogStartOffset()
					fr.partitionErrors = true // answer now
					ft.partitions = append(ft.partitions, fp)
					continue
				}
			}
			if err == nil && replica && !recorded[topicPartition{rt.Topic, rp.Partition}] {
				// A follower's fetch offset is its log end: the leader's
				// ISR and high watermark move on it.
				c.s.backend.ReplicaFetched(rt.Topic, rp.Partition, req.ReplicaID, rp.FetchOffset)
				recorded[topicPartition{rt.Topic, rp.Partition}] = true
			}
			if err == nil {
				fp.highWatermark = p.HighWatermark()
				fp.lastStableOffset = p.LastStableOffset()
				fp.logStartOffset = p.LogStartOffset()
				limit := min(int64(rp.PartitionMaxBytes), budget)
				if first || limit > 0 {
					switch {
					case replica:
						fp.records, err = p.ReadReplica(rp.FetchOffset, max(limit, 1))
					case readCommitted:
						// Up to the last stable offset, naming the aborted
						// transactions in it so the consumer drops them.
						fp.records, err = p.ReadCommitted(rp.FetchOffset, max(limit, 1), fp.lastStableOffset)
						fp.aborted = p.AbortedTxns(rp.FetchOffset, fp.lastStableOffset)
					default:
						fp.records, err = p.Read(rp.FetchOffset, max(limit, 1))
					}
				}
				if err == nil && !fp.records.Empty() {
					if !first && fp.records.Size > limit {
						// Over the limit: only the first may exceed it.
						fp.records.Release()
						fp.records = storage.Region{}
					} else {
						budget -= fp.records.Size
						first = false
					}
				}
			}
			fp.errorCode = errorCode(err)
			fr.partitionErrors = fr.partitionErrors || err != nil
			ft.partitions = append(ft.partitions, fp)
		}
		fr.topics = append(fr.topics, ft)
	}
	return fr
}
