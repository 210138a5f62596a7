package group

// SyncGroup: the leader's assignment is persisted before any member gets
// its own; v5 echoes the protocol type and name.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleSyncGroup) }

func (c *Coordinator) handleSyncGroup(ctx context.Context, r call, req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse) {
	assignments := map[string][]byte{}
	for _, a := range req.GroupAssignment {
		assignments[a.MemberID] = a.MemberAssignment
	}
	res := c.sync(ctx, r.shard(req.Group), req.Group, req.MemberID, req.Generation, assignments)
	resp.ErrorCode, resp.MemberAssignment = res.ErrorCode, res.MemberAssignment
	resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
}

// sync delivers the leader's assignment.
func (c *Coordinator) sync(ctx context.Context, shardID int32, groupName, memberID string, generation int32, assignments map[string][]byte) kmsg.SyncGroupResponse {
	c.mu.Lock()
	s, g, err := c.groupLocked(shardID, groupName, false)
	if err == nil && g == nil {
		err = kerr.UnknownMemberID
	}
	if err != nil {
		c.mu.Unlock()
		return kmsg.SyncGroupResponse{ErrorCode: codeOf(err)}
	}
	m := g.members[memberID]
	c.log.Debug("group sync", "group", groupName, "member", memberID, "generation", generation, "state", g.state, "current", g.generation)
	switch {
	case m == nil:
		c.mu.Unlock()
		return kmsg.SyncGroupResponse{ErrorCode: kerr.UnknownMemberID.Code}
	case generation != g.generation:
		c.mu.Unlock()
		return kmsg.SyncGroupResponse{ErrorCode: kerr.IllegalGeneration.Code}
	case g.state == PreparingRebalance:
		c.mu.Unlock()
		return kmsg.SyncGroupResponse{ErrorCode: kerr.RebalanceInProgress.Code}
	case g.state == Stable:
		res := kmsg.SyncGroupResponse{MemberAssignment: m.assignment}
		c.mu.Unlock()
		return res
	}
	m.lastSeen = time.Now()
	ch := make(chan kmsg.SyncGroupResponse, 1)
	m.syncWait = ch
	if memberID == g.leader {
		for id, om := range g.members {
			om.assignment = assignments[id]
		}
		gen := g.generation
		rec := groupMetadataRecord(g)
		c.mu.Unlock()
		err := s.log.Commit(ctx, recordKVs{rec}.records())
		c.mu.Lock()
		if g.generation == gen && g.state == CompletingRebalance {
			if err != nil {
				c.log.Warn("persisting group metadata", "group", g.name, "err", err)
				for _, om := range g.members {
					if om.syncWait != nil {
						om.syncWait <- kmsg.SyncGroupResponse{ErrorCode: kerr.NotCoordinator.Code}
						om.syncWait = nil
					}
				}
				c.prepareRebalanceLocked(g, time.Now())
			} else {
				g.state = Stable
				for _, om := range g.members {
					if om.syncWait != nil {
						om.syncWait <- kmsg.SyncGroupResponse{MemberAssignment: om.assignment}
						om.syncWait = nil
					}
				}
			}
		}
	}
	c.mu.Unlock()
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		return kmsg.SyncGroupResponse{ErrorCode: kerr.RebalanceInProgress.Code}
	}
}
