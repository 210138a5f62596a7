package group

// OffsetFetch: v8+ asks for many groups at once; v0-v1 have no top-level
// error code, so each partition carries it.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleOffsetFetch) }

func (c *Coordinator) handleOffsetFetch(_ context.Context, r call, req *kmsg.OffsetFetchRequest, resp *kmsg.OffsetFetchResponse) {
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			tps := requested(rg.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) (string, []int32) { return t.Topic, t.Partitions })
			topics, code := c.fetch(r.shard(rg.Group), rg.Group, tps)
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, code
			for topic, parts := range topics {
				t := kmsg.NewOffsetFetchResponseGroupTopic()
				t.Topic = topic
				for _, p := range parts {
					rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.tp.Partition, p.o.Offset, p.o.LeaderEpoch, &p.o.Metadata
					t.Partitions = append(t.Partitions, rp)
				}
				g.Topics = append(g.Topics, t)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return
	}
	tps := requested(req.Topics, func(t kmsg.OffsetFetchRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
	topics, code := c.fetch(r.shard(req.Group), req.Group, tps)
	resp.ErrorCode = code
	for topic, parts := range topics {
		t := kmsg.NewOffsetFetchResponseTopic()
		t.Topic = topic
		for _, p := range parts {
			rp := kmsg.NewOffsetFetchResponseTopicPartition()
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p.tp.Partition, p.o.Offset, p.o.LeaderEpoch, &p.o.Metadata
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
	tp TopicPartition
	o  Committed
}

// fetch lays out committed offsets by topic: every partition asked for
// (offset -1 when nothing is committed, or on error), or with tps nil every
// one the group committed.
func (c *Coordinator) fetch(shardID int32, groupName string, tps []TopicPartition) (map[string][]fetched, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, err := c.groupLocked(shardID, groupName, false)
	var offsets map[TopicPartition]Committed
	if g != nil {
		offsets = g.offsets
	}
	out := map[string][]fetched{}
	if tps == nil {
		for tp, o := range offsets {
			out[tp.Topic] = append(out[tp.Topic], fetched{tp, o})
		}
	}
	for _, tp := range tps {
		o, ok := offsets[tp]
		if !ok {
			o = Committed{Offset: -1, LeaderEpoch: -1}
		}
		out[tp.Topic] = append(out[tp.Topic], fetched{tp, o})
	}
	return out, codeOf(err)
}
