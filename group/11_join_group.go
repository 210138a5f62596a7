package group

// JoinGroup: v0 has no rebalance timeout (the session timeout serves); from
// v4 a new member gets MEMBER_ID_REQUIRED and an id to join with. The answer
// waits for the rebalance to complete.

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleJoinGroup) }

func (c *Coordinator) handleJoinGroup(ctx context.Context, r call, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) {
	jr := joinRequest{Group: req.Group, MemberID: req.MemberID, InstanceID: deref(req.InstanceID), ClientID: r.clientID,
		ClientHost: r.clientHost, ProtocolType: req.ProtocolType, SessionTimeout: time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond, RequireKnownMemberID: req.Version >= 4}
	if req.Version == 0 {
		jr.RebalanceTimeout = jr.SessionTimeout
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, protocol{p.Name, p.Metadata})
	}
	*resp = c.join(ctx, r.shard(req.Group), jr)
	resp.Version = req.Version // join answers without one
	if resp.ErrorCode != 0 {
		resp.Generation = -1
	}
}

type joinRequest struct {
	Group, MemberID, InstanceID, ClientID, ClientHost, ProtocolType string
	SessionTimeout, RebalanceTimeout                                time.Duration
	Protocols                                                       []protocol
	RequireKnownMemberID                                            bool // JoinGroup v4+: a new member gets MEMBER_ID_REQUIRED first
}

// join adds or refreshes a member and waits for the rebalance to finish.
func (c *Coordinator) join(ctx context.Context, shardID int32, r joinRequest) kmsg.JoinGroupResponse {
	c.mu.Lock()
	s, g, err := c.groupLocked(shardID, r.Group, true)
	if err != nil {
		c.mu.Unlock()
		return kmsg.JoinGroupResponse{ErrorCode: codeOf(err)}
	}
	if r.SessionTimeout < c.cfg.MinSessionTimeout || r.SessionTimeout > c.cfg.MaxSessionTimeout {
		c.mu.Unlock()
		return kmsg.JoinGroupResponse{ErrorCode: kerr.InvalidSessionTimeout.Code}
	}
	id := r.MemberID
	if id == "" && r.InstanceID != "" {
		for mid, m := range g.members {
			if m.instanceID == r.InstanceID {
				id = mid // a static member coming back keeps its place
			}
		}
	}
	if !g.supportsProtocols(r.ProtocolType, r.Protocols, id) {
		c.mu.Unlock()
		return kmsg.JoinGroupResponse{ErrorCode: kerr.InconsistentGroupProtocol.Code}
	}
	if r.MemberID == "" && id != "" {
		if res, ok := c.replaceStaticLocked(s, g, id, r); ok {
			c.mu.Unlock()
			return res
		}
	}
	switch {
	case id == "":
		id = newMemberID(cmp.Or(r.InstanceID, r.ClientID)) // static members' ids start with the instance id, as Kafka's
		if r.RequireKnownMemberID && r.InstanceID == "" {
			g.pendingIDs[id] = true
			c.mu.Unlock()
			return kmsg.JoinGroupResponse{ErrorCode: kerr.MemberIDRequired.Code, MemberID: id}
		}
	case g.members[id] == nil && !g.pendingIDs[id] && r.InstanceID == "":
		c.mu.Unlock()
		return kmsg.JoinGroupResponse{ErrorCode: kerr.UnknownMemberID.Code}
	}
	delete(g.pendingIDs, id)
	m := g.members[id]
	if m == nil {
		g.joinCounter++
		m = &member{id: id, order: g.joinCounter}
		g.members[id] = m
	}
	if m.joinWait != nil {
		m.joinWait <- kmsg.JoinGroupResponse{ErrorCode: kerr.UnknownMemberID.Code} // superseded by this join
	}
	m.instanceID, m.clientID, m.clientHost = r.InstanceID, r.ClientID, r.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = r.SessionTimeout, max(r.RebalanceTimeout, r.SessionTimeout)
	m.protocolType, m.protocols = r.ProtocolType, r.Protocols
	m.lastSeen, m.joined = time.Now(), true
	g.protocolType = r.ProtocolType
	ch := make(chan kmsg.JoinGroupResponse, 1)
	m.joinWait = ch
	c.log.Debug("group join", "group", g.name, "member", id, "state", g.state, "generation", g.generation)
	c.prepareRebalanceLocked(g, time.Now())
	m.joined = true // prepare resets it
	c.maybeCompleteLocked(s, g, time.Now())
	c.mu.Unlock()
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		return kmsg.JoinGroupResponse{ErrorCode: kerr.RebalanceInProgress.Code}
	}
}

// replaceStaticLocked lets a static member (group.instance.id) that comes
// back while its group is stable take its old place without a rebalance
// (KIP-345): it gets a new member id, which fences the old instance, and
// its old assignment through SyncGroup. The leader, or a member whose
// protocols changed, rejoins the usual way.
func (c *Coordinator) replaceStaticLocked(s *shard, g *group, oldID string, r joinRequest) (kmsg.JoinGroupResponse, bool) {
	m := g.members[oldID]
	if g.state != Stable || m == nil || oldID == g.leader || m.protocolType != r.ProtocolType ||
		!slices.EqualFunc(m.protocols, r.Protocols, func(a, b protocol) bool { return a.name == b.name && bytes.Equal(a.metadata, b.metadata) }) {
		return kmsg.JoinGroupResponse{}, false
	}
	c.failWaitsLocked(m, kerr.FencedInstanceID.Code)
	id := newMemberID(r.InstanceID)
	delete(g.members, oldID)
	m.id = id
	g.members[id] = m
	m.clientID, m.clientHost = r.ClientID, r.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = r.SessionTimeout, max(r.RebalanceTimeout, r.SessionTimeout)
	m.lastSeen = time.Now()
	c.persistAsync(s, g)
	c.log.Info("static group member replaced without a rebalance", "group", g.name, "instance", m.instanceID,
		"old_member", oldID, "member", id, "generation", g.generation)
	return kmsg.JoinGroupResponse{Generation: g.generation, ProtocolType: optional(g.protocolType), Protocol: optional(g.protocol),
		LeaderID: g.leader, MemberID: id}, true
}
