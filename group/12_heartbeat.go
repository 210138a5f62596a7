package group

// Heartbeat: REBALANCE_IN_PROGRESS tells a member to rejoin.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleHeartbeat) }

func (c *Coordinator) handleHeartbeat(_ context.Context, r call, req *kmsg.HeartbeatRequest, resp *kmsg.HeartbeatResponse) {
	resp.ErrorCode = c.heartbeat(r.shard(req.Group), req.Group, req.MemberID, req.Generation)
}

// heartbeat keeps a member's session alive.
func (c *Coordinator) heartbeat(shardID int32, groupName, memberID string, generation int32) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, err := c.groupLocked(shardID, groupName, false)
	if err == nil && g == nil {
		err = kerr.UnknownMemberID
	}
	if err != nil {
		return codeOf(err)
	}
	m := g.members[memberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	m.lastSeen = time.Now()
	if g.state == PreparingRebalance {
		c.log.Debug("group heartbeat during rebalance", "group", g.name, "member", memberID)
		return kerr.RebalanceInProgress.Code
	}
	return 0
}
