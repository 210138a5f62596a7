package group

// OffsetCommit: generation -1 in v0, leader epochs from v6. One error code
// for every partition: the offsets are one batch, committed with acks=all.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleOffsetCommit) }

func (c *Coordinator) handleOffsetCommit(ctx context.Context, r call, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) {
	offsets := map[TopicPartition]Committed{}
	now := time.Now().UnixMilli()
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			o := Committed{Offset: p.Offset, LeaderEpoch: -1, Metadata: deref(p.Metadata), CommitMs: now}
			if req.Version >= 6 {
				o.LeaderEpoch = p.LeaderEpoch
			}
			offsets[TopicPartition{t.Topic, p.Partition}] = o
		}
	}
	gen := req.Generation
	if req.Version == 0 {
		gen = -1
	}
	code := c.commit(ctx, r.shard(req.Group), req.Group, req.MemberID, gen, offsets)
	resp.Topics = append(resp.Topics, OffsetCommitResults(req.Topics, code)...)
}

// commit stores offsets for a group: a member of the current generation,
// or a simple consumer (no member id, generation -1) of a group with no
// members. It returns once the records are committed.
func (c *Coordinator) commit(ctx context.Context, shardID int32, groupName, memberID string, generation int32, offsets map[TopicPartition]Committed) int16 {
	c.mu.Lock()
	s, g, err := c.groupLocked(shardID, groupName, true)
	if err != nil {
		c.mu.Unlock()
		return codeOf(err)
	}
	if memberID != "" || generation >= 0 {
		m := g.members[memberID]
		switch {
		case m == nil:
			c.mu.Unlock()
			return kerr.UnknownMemberID.Code
		case generation != g.generation:
			c.mu.Unlock()
			return kerr.IllegalGeneration.Code
		case g.state == CompletingRebalance:
			// As Kafka: a member may still commit for its generation while
			// the group prepares a rebalance (cooperative members keep their
			// partitions through it), not while the new assignment is out.
			c.mu.Unlock()
			return kerr.RebalanceInProgress.Code
		}
		m.lastSeen = time.Now()
	} else if len(g.members) > 0 {
		c.mu.Unlock()
		return kerr.UnknownMemberID.Code // a simple commit into an active group
	}
	var recs []recordKV
	for tp, o := range offsets {
		recs = append(recs, offsetRecord(groupName, tp, o))
	}
	c.mu.Unlock()
	if err := s.log.Commit(ctx, recordKVs(recs).records()); err != nil {
		c.log.Warn("committing offsets", "group", groupName, "err", err)
		return codeOf(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.gone {
		return kerr.NotCoordinator.Code
	}
	if cur := s.groups[groupName]; cur != nil {
		for tp, o := range offsets {
			cur.offsets[tp] = o
		}
	}
	return 0
}

// OffsetCommitResults answers every partition of topics with code.
func OffsetCommitResults(topics []kmsg.OffsetCommitRequestTopic, code int16) []kmsg.OffsetCommitResponseTopic {
	out := make([]kmsg.OffsetCommitResponseTopic, 0, len(topics))
	for _, t := range topics {
		rt := kmsg.NewOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return out
}
