package protocol

// OffsetForLeaderEpoch v0-v4: for each partition, the largest leader epoch
// this leader knows that is <= the one asked for, and the offset where it
// ended (the next epoch's start, or the log end for the latest). Followers
// use it to find where their log diverges (KIP-101/279); clients (franz-go,
// librdkafka) to detect truncation after a leader change. v2+ carries the
// caller's current leader epoch, which is fenced. A follower's request
// needs CLUSTER_ACTION, a client's DESCRIBE on each topic.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/partition"
)

func init() { register(23, 0, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	var replicaErr error
	if req.Version >= 3 && req.ReplicaID >= 0 {
		replicaErr = c.s.backend.AuthorizeReplica(req.ReplicaID, c.clientID)
	}
	replica := req.Version >= 3 && req.ReplicaID >= 0
	if replica && replicaErr == nil && !c.allowedCluster(acl.OpClusterAction) {
		replicaErr = ErrClusterAuthorization
	}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		denied := replicaErr // nothing, not even existence, to the unauthorized
		if !replica && !c.allowedTopic(acl.OpDescribe, rt.Topic) {
			denied = ErrTopicAuthorization
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			var p *partition.Partition
			err := denied
			if err == nil {
				p, err = c.s.backend.Partition(rt.Topic, rp.Partition)
			}
			epoch := int32(-1)
			if req.Version >= 2 {
				epoch = rp.CurrentLeaderEpoch
			}
			if err == nil {
				err = p.CheckLeader(epoch)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
			} else {
				sp.LeaderEpoch, sp.EndOffset = p.EndOffsetForEpoch(rp.LeaderEpoch)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}, nil
}
