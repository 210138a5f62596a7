package group

// OffsetDelete: GROUP_SUBSCRIBED_TO_TOPIC unless the group has no members;
// one error code for the request, none per partition.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleOffsetDelete) }

func (c *Coordinator) handleOffsetDelete(ctx context.Context, r call, req *kmsg.OffsetDeleteRequest, resp *kmsg.OffsetDeleteResponse) {
	var tps []TopicPartition
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			tps = append(tps, TopicPartition{t.Topic, p.Partition})
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	resp.ErrorCode = c.deleteOffsets(ctx, r.shard(req.Group), req.Group, tps)
}

// deleteOffsets removes committed offsets of a group with no members.
func (c *Coordinator) deleteOffsets(ctx context.Context, shardID int32, name string, tps []TopicPartition) int16 {
	c.mu.Lock()
	s, g, code := c.memberlessGroupLocked(shardID, name, kerr.GroupSubscribedToTopic.Code)
	if code != 0 {
		c.mu.Unlock()
		return code
	}
	var recs recordKVs
	for _, tp := range tps {
		recs = append(recs, offsetTombstone(name, tp))
	}
	c.mu.Unlock()
	if err := s.log.Commit(ctx, recs.records()); err != nil {
		return codeOf(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		delete(g.offsets, tp)
	}
	return 0
}
