package group

// OffsetFetch: v8+ asks for many groups at once; v0-v1 have no top-level
// error code, so each partition carries it. With require_stable (v7+) a
// partition whose offset an open transaction is committing answers
// UNSTABLE_OFFSET_COMMIT (clients retry) instead of the older offset.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleOffsetFetch) }

func (c *Coordinator) handleOffsetFetch(_ context.Context, r call, req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse) {
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			tps := requested(rg.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) (string, []int32) { return t.Topic, t.Partitions })
			topics, code := c.fetch(r.shard(rg.Group), rg.Group, tps, req.RequireStable)
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, code
			for topic, parts := range topics {
				t := kmsg.NewOffsetFetchResponseGroupTopic()
				t.Topic = topic
				for _, p := range parts {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.tp.Partition, p.o.Offset, p.o.LeaderEpoch, &p.o.Metadata, p.code
					t.Partitions = append(t.Partitions, rp)
				}
				g.Topics = append(g.Topics, t)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return
	}
	tps := requested(req.Topics, func(t kmsg.OffsetFetchRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
	topics, code := c.fetch(r.shard(req.Group), req.Group, tps, req.Version >= 7 && req.RequireStable)
	resp.ErrorCode = code
	for topic, parts := range topics {
		t := kmsg.NewOffsetFetchResponseTopic()
		t.Topic = topic
		for _, p := range parts {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata, rp.ErrorCode = p.tp.Partition, p.o.Offset, p.o.LeaderEpoch, &p.o.Metadata, p.code
			if req.Version < 2 && code != 0 {
				rp.ErrorCode = code // v0-v1 have no top-level error
			}
			t.Partitions = append(t.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, t)
	}
}

// requested lists the partitions an OffsetFetch asks for; nil topics (as
// opposed to none) means every partition the group committed.
func requested[T any](topics []T, parts func(T) (string, []int32)) []TopicPartition {
	if topics == nil {
		return nil
	}
	tps := []TopicPartition{}
	for _, t := range topics {
		name, ps := parts(t)
		for _, p := range ps {
			tps = append(tps, TopicPartition{name, p})
		}
	}
	return tps
}

type fetched struct {
	tp   TopicPartition
	o    Committed
	code int16 // UNSTABLE_OFFSET_COMMIT under require_stable
}

// fetch lays out committed offsets by topic: every partition asked for
// (offset -1 when nothing is committed, or on error), or with tps nil every
// one the group committed.
func (c *Coordinator) fetch(shardID int32, groupName string, tps []TopicPartition, stable bool) (map[string][]fetched, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, g, err := c.groupLocked(shardID, groupName, false)
	code := func(tp TopicPartition) int16 {
		if stable && s != nil && s.unstable(groupName, tp) {
			return kerr.UnstableOffsetCommit.Code
		}
		return 0
	}
	var offsets map[TopicPartition]Committed
	if g != nil {
		offsets = g.offsets
	}
	out := map[string][]fetched{}
	if tps == nil {
		for tp, o := range offsets {
			out[tp.Topic] = append(out[tp.Topic], fetched{tp, o, code(tp)})
		}
	}
	for _, tp := range tps {
		o, ok := offsets[tp]
		if !ok {
			o = Committed{Offset: -1, LeaderEpoch: -1}
		}
		out[tp.Topic] = append(out[tp.Topic], fetched{tp, o, code(tp)})
	}
	return out, codeOf(err)
}
