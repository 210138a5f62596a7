package group

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

var errUnknownMember = errors.New("group: unknown member")

func codeOf(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, ErrLoading):
		return kerr.CoordinatorLoadInProgress.Code
	case errors.Is(err, errUnknownMember):
		return kerr.UnknownMemberID.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.NotCoordinator.Code // the partition's log failed or moved: clients find the coordinator again
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

// fetch returns committed offsets (all of the group's when tps is nil).
func (c *Coordinator) fetch(shardID int32, groupName string, tps []TopicPartition) (map[TopicPartition]Committed, int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, err := c.groupLocked(shardID, groupName, false)
	if err != nil {
		return nil, codeOf(err)
	}
	out := map[TopicPartition]Committed{}
	if g == nil {
		return out, 0
	}
	if tps == nil {
		for tp, o := range g.offsets {
			out[tp] = o
		}
		return out, 0
	}
	for _, tp := range tps {
		if o, ok := g.offsets[tp]; ok {
			out[tp] = o
		}
	}
	return out, 0
}
