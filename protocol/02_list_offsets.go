package protocol

// ListOffsets v0-v7: earliest (-2), latest (-1, the high watermark) and by
// timestamp (first offset whose record timestamp is at or after it; inside
// compressed batches, the batch's first offset); read_committed (v2+)
// "latest" is the last stable offset. v0 answers in its old
// list-of-offsets form. As in Kafka, replica id -2 (the debugging replica
// id) may ask any replica, leader or not, and "latest" is then that
// replica's log end offset: `mlog topic list` shows each replica's LEO so. The max-timestamp query (-3, v7) is refused with
// UNSUPPORTED_VERSION for now. The returned timestamp is -1 (not tracked).
// Each topic needs DESCRIBE (TOPIC_AUTHORIZATION_FAILED).

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/partition"
)

func init() { register(2, 0, 7, handleListOffsets) }

func handleListOffsets(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		describable := c.allowedTopic(acl.OpDescribe, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			if !describable {
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if p, err := c.s.backend.Partition(rt.Topic, rp.Partition); err == nil {
				sp.LeaderEpoch = p.LeaderEpoch()
			}
			epoch := int32(-1)
			if req.Version >= 4 {
				epoch = rp.CurrentLeaderEpoch
			}
			off, err := listOffset(c, rt.Topic, rp.Partition, rp.Timestamp, epoch, req.ReplicaID == debuggingReplicaID)
			if err == nil && req.Version >= 2 && req.IsolationLevel == 1 && rp.Timestamp == partition.LatestTimestamp && req.ReplicaID != debuggingReplicaID {
				// read_committed: "latest" is the last stable offset.
				off = min(off, c.lastStable(rt.Topic, rp.Partition))
			}
			switch {
			case errors.Is(err, partition.ErrNoOffset):
				// No such record: offset -1 (v0: no offsets), no error.
			case err != nil:
				sp.ErrorCode = errorCode(err)
			case req.Version == 0:
				sp.OldStyleOffsets = []int64{off}
			default:
				sp.Offset = off
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}, nil
}

// lastStable is a partition's last stable offset (its high watermark when
// it is not here).
func (c *conn) lastStable(topic string, id int32) int64 {
	p, err := c.s.backend.Partition(topic, id)
	if err != nil {
		return 1<<63 - 1
	}
	return p.LastStableOffset()
}

// debuggingReplicaID lets ListOffsets ask a follower (Kafka's
// ListOffsetsRequest.DEBUGGING_REPLICA_ID).
const debuggingReplicaID = -2

func listOffset(c *conn, topic string, id int32, ts int64, epoch int32, debug bool) (int64, error) {
	p, err := c.s.backend.Partition(topic, id)
	if err != nil {
		return 0, err
	}
	if debug {
		if ts == partition.LatestTimestamp {
			return p.LogEndOffset(), nil
		}
	} else if err := p.CheckLeader(epoch); err != nil {
		return 0, err
	}
	if ts == partition.MaxTimestamp {
		return 0, kerr.UnsupportedVersion
	}
	return p.OffsetFor(ts)
}
