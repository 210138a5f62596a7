package group

import (
	"bytes"
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

type joinMember struct {
	id, instanceID string
	metadata       []byte
}

type joinResult struct {
	code         int16
	generation   int32
	protocolType string
	protocol     string
	leader       string
	memberID     string
	members      []joinMember
}

type syncResult struct {
	code       int16
	assignment []byte
}

// JoinRequest is a JoinGroup.
type JoinRequest struct {
	Group, MemberID, InstanceID, ClientID, ClientHost, ProtocolType string
	SessionTimeout, RebalanceTimeout                                time.Duration
	Protocols                                                       []Protocol
	RequireKnownMemberID                                            bool // JoinGroup v4+: a new member gets MEMBER_ID_REQUIRED first
}

// Protocol is one assignment protocol a member supports.
type Protocol struct {
	Name     string
	Metadata []byte
}

// join adds or refreshes a member and waits for the rebalance to finish.
func (c *Coordinator) join(ctx context.Context, shardID int32, r JoinRequest) joinResult {
	c.mu.Lock()
	s, g, err := c.groupLocked(shardID, r.Group, true)
	if err != nil {
		c.mu.Unlock()
		return joinResult{code: codeOf(err)}
	}
	if r.SessionTimeout < c.cfg.MinSessionTimeout || r.SessionTimeout > c.cfg.MaxSessionTimeout {
		c.mu.Unlock()
		return joinResult{code: kerr.InvalidSessionTimeout.Code}
	}
	protos := make([]protocol, len(r.Protocols))
	for i, p := range r.Protocols {
		protos[i] = protocol{p.Name, p.Metadata}
	}
	id := r.MemberID
	if id == "" && r.InstanceID != "" {
		for mid, m := range g.members {
			if m.instanceID == r.InstanceID {
				id = mid // a static member coming back keeps its place
			}
		}
	}
	if !g.supportsProtocols(r.ProtocolType, protos, id) {
		c.mu.Unlock()
		return joinResult{code: kerr.InconsistentGroupProtocol.Code}
	}
	if r.MemberID == "" && id != "" {
		if res, ok := c.replaceStaticLocked(s, g, id, r, protos); ok {
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
			return joinResult{code: kerr.MemberIDRequired.Code, memberID: id}
		}
	case g.members[id] == nil && !g.pendingIDs[id] && r.InstanceID == "":
		c.mu.Unlock()
		return joinResult{code: kerr.UnknownMemberID.Code}
	}
	delete(g.pendingIDs, id)
	m := g.members[id]
	if m == nil {
		g.joinCounter++
		m = &member{id: id, order: g.joinCounter}
		g.members[id] = m
	}
	if m.joinWait != nil {
		m.joinWait <- joinResult{code: kerr.UnknownMemberID.Code} // superseded by this join
	}
	m.instanceID, m.clientID, m.clientHost = r.InstanceID, r.ClientID, r.ClientHost
	m.sessionTimeout, m.rebalanceTimeout = r.SessionTimeout, max(r.RebalanceTimeout, r.SessionTimeout)
	m.protocolType, m.protocols = r.ProtocolType, protos
	m.lastSeen, m.joined = time.Now(), true
	g.protocolType = r.ProtocolType
	ch := make(chan joinResult, 1)
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
		return joinResult{code: kerr.RebalanceInProgress.Code}
	}
}

// sync delivers the leader's assignment.
func (c *Coordinator) sync(ctx context.Context, shardID int32, groupName, memberID string, generation int32, assignments map[string][]byte) syncResult {
	c.mu.Lock()
	s, g, err := c.groupLocked(shardID, groupName, false)
	if err == nil && g == nil {
		err = errUnknownMember
	}
	if err != nil {
		c.mu.Unlock()
		return syncResult{code: codeOf(err)}
	}
	m := g.members[memberID]
	c.log.Debug("group sync", "group", groupName, "member", memberID, "generation", generation, "state", g.state, "current", g.generation)
	switch {
	case m == nil:
		c.mu.Unlock()
		return syncResult{code: kerr.UnknownMemberID.Code}
	case generation != g.generation:
		c.mu.Unlock()
		return syncResult{code: kerr.IllegalGeneration.Code}
	case g.state == PreparingRebalance:
		c.mu.Unlock()
		return syncResult{code: kerr.RebalanceInProgress.Code}
	case g.state == Stable:
		res := syncResult{assignment: m.assignment}
		c.mu.Unlock()
		return res
	}
	m.lastSeen = time.Now()
	ch := make(chan syncResult, 1)
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
						om.syncWait <- syncResult{code: kerr.NotCoordinator.Code}
						om.syncWait = nil
					}
				}
				c.prepareRebalanceLocked(g, time.Now())
			} else {
				g.state = Stable
				for _, om := range g.members {
					if om.syncWait != nil {
						om.syncWait <- syncResult{assignment: om.assignment}
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
		return syncResult{code: kerr.RebalanceInProgress.Code}
	}
}

// heartbeat keeps a member's session alive.
func (c *Coordinator) heartbeat(shardID int32, groupName, memberID string, generation int32) int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, g, err := c.groupLocked(shardID, groupName, false)
	if err == nil && g == nil {
		err = errUnknownMember
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

// leave removes members (by id, or by instance id for static members).
func (c *Coordinator) leave(shardID int32, groupName string, ids, instanceIDs []string) (int16, []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, g, err := c.groupLocked(shardID, groupName, false)
	if err == nil && g == nil {
		err = errUnknownMember
	}
	if err != nil {
		return codeOf(err), nil
	}
	codes := make([]int16, len(ids))
	for i, id := range ids {
		if id == "" && instanceIDs[i] != "" {
			for mid, m := range g.members {
				if m.instanceID == instanceIDs[i] {
					id = mid
				}
			}
		}
		if g.members[id] == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		c.log.Info("group member left", "group", g.name, "member", id)
		c.removeMemberLocked(s, g, id)
	}
	return 0, codes
}

// replaceStaticLocked lets a static member (group.instance.id) that comes
// back while its group is stable take its old place without a rebalance
// (KIP-345): it gets a new member id, which fences the old instance, and
// its old assignment through SyncGroup. The leader, or a member whose
// protocols changed, rejoins the usual way.
func (c *Coordinator) replaceStaticLocked(s *shard, g *group, oldID string, r JoinRequest, protos []protocol) (joinResult, bool) {
	m := g.members[oldID]
	if g.state != Stable || m == nil || oldID == g.leader || m.protocolType != r.ProtocolType ||
		!slices.EqualFunc(m.protocols, protos, func(a, b protocol) bool { return a.name == b.name && bytes.Equal(a.metadata, b.metadata) }) {
		return joinResult{}, false
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
	return joinResult{generation: g.generation, protocolType: g.protocolType, protocol: g.protocol, leader: g.leader, memberID: id}, true
}
