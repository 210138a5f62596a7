package group

// TxnOffsetCommit v0-v3: offsets committed inside a producer's
// transaction (consume-transform-produce). They are written to the
// group's offsets partition as the producer's transactional batch and held
// aside until the transaction's marker reaches that partition (TxnMarker):
// a commit makes them the group's offsets, an abort drops them. From v3
// the member and generation are checked as OffsetCommit checks them.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/partition"
)

func init() { register((*Coordinator).handleTxnOffsetCommit) }

func (c *Coordinator) handleTxnOffsetCommit(ctx context.Context, r call, req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse) {
	code := c.commitTxn(ctx, r.shard(req.Group), req)
	resp.Topics = append(resp.Topics, TxnOffsetCommitResults(req.Topics, code)...)
}

// TxnOffsetCommitResults answers every partition of topics with code.
func TxnOffsetCommitResults(topics []kmsg.TxnOffsetCommitRequestTopic, code int16) []kmsg.TxnOffsetCommitResponseTopic {
	out := make([]kmsg.TxnOffsetCommitResponseTopic, 0, len(topics))
	for _, t := range topics {
		rt := kmsg.NewTxnOffsetCommitResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			rp.Partition, rp.ErrorCode = p.Partition, code
			rt.Partitions = append(rt.Partitions, rp)
		}
		out = append(out, rt)
	}
	return out
}

func (c *Coordinator) commitTxn(ctx context.Context, shardID int32, req *kmsg.TxnOffsetCommitRequest) int16 {
	c.mu.Lock()
	s, g, err := c.groupLocked(shardID, req.Group, true)
	if err != nil {
		c.mu.Unlock()
		return codeOf(err)
	}
	if req.Version >= 3 && (req.MemberID != "" || req.Generation >= 0) {
		switch m := g.members[req.MemberID]; {
		case m == nil:
			c.mu.Unlock()
			return kerr.UnknownMemberID.Code
		case req.Generation != g.generation:
			c.mu.Unlock()
			return kerr.IllegalGeneration.Code
		}
	}
	now := time.Now().UnixMilli()
	var recs []recordKV
	offsets := map[TopicPartition]Committed{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			o := Committed{Offset: p.Offset, LeaderEpoch: -1, Metadata: deref(p.Metadata), CommitMs: now}
			if req.Version >= 2 {
				o.LeaderEpoch = p.LeaderEpoch
			}
			tp := TopicPartition{t.Topic, p.Partition}
			offsets[tp] = o
			recs = append(recs, offsetRecord(req.Group, tp, o))
		}
	}
	if len(recs) == 0 {
		c.mu.Unlock()
		return 0 // nothing to commit
	}
	// Held aside before they are written: a marker that lands as soon as
	// they are (an abort on timeout) must find them.
	for tp, o := range offsets {
		addPending(s.pending, req.ProducerID, req.Group, tp, o)
	}
	c.mu.Unlock()
	if err := s.log.CommitTxn(ctx, recordKVs(recs).records(), req.ProducerID, req.ProducerEpoch); err != nil {
		c.log.Warn("committing transactional offsets", "group", req.Group, "producer_id", req.ProducerID, "err", err)
		// Not written, or not known to be: the marker that ends the
		// transaction (an abort, since the client saw a failure) drops
		// them; an older epoch's write is refused as fenced.
		if errors.Is(err, partition.ErrInvalidProducerEpoch) {
			// Refused, surely not written: a fenced instance's offsets
			// must not ride on the producer's next transaction.
			c.mu.Lock()
			for tp, o := range offsets {
				if byGroup := s.pending[req.ProducerID]; byGroup != nil && byGroup[req.Group][tp] == o {
					delete(byGroup[req.Group], tp)
				}
			}
			c.mu.Unlock()
			return kerr.ProducerFenced.Code
		}
		return codeOf(err)
	}
	return 0
}

// TxnMarker tells the coordinator of offsets partition id that producer's
// transaction ended there (its marker is written and replicated): the
// offsets it committed count (commit) or are dropped (abort).
func (c *Coordinator) TxnMarker(id int32, producerID int64, commit bool) {
	c.mu.Lock()
	s := c.shards[id]
	c.mu.Unlock()
	if s == nil {
		return
	}
	// The replay may have read the log before this marker: wait for it,
	// then apply (a marker the replay saw too finds nothing pending).
	<-s.ready
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.gone {
		return
	}
	endTxn(s.pending, producerID, commit, func(name string) *group {
		g := s.groups[name]
		if g == nil {
			g = newGroup(name)
			s.groups[name] = g
		}
		return g
	})
}

// unstable reports whether an open transaction holds an offset of tp for
// the group (OffsetFetch's require_stable: UNSTABLE_OFFSET_COMMIT).
func (s *shard) unstable(groupName string, tp TopicPartition) bool {
	for _, byGroup := range s.pending {
		if _, ok := byGroup[groupName][tp]; ok {
			return true
		}
	}
	return false
}
