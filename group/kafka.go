package group

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Handle answers a group request. partitions is the number of
// __consumer_offsets partitions (a group's shard is PartitionFor(group,
// partitions)).
func (c *Coordinator) Handle(ctx context.Context, partitions int, clientID, clientHost string, kreq kmsg.Request) kmsg.Response {
	shard := func(g string) int32 { return PartitionFor(g, partitions) }
	switch req := kreq.(type) {
	case *kmsg.JoinGroupRequest:
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		jr := JoinRequest{Group: req.Group, MemberID: req.MemberID, ClientID: clientID, ClientHost: clientHost,
			ProtocolType: req.ProtocolType, SessionTimeout: time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
			RebalanceTimeout: time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond, RequireKnownMemberID: req.Version >= 4}
		if req.Version == 0 {
			jr.RebalanceTimeout = jr.SessionTimeout
		}
		if req.InstanceID != nil {
			jr.InstanceID = *req.InstanceID
		}
		for _, p := range req.Protocols {
			jr.Protocols = append(jr.Protocols, Protocol{p.Name, p.Metadata})
		}
		res := c.join(ctx, shard(req.Group), jr)
		resp.ErrorCode, resp.Generation, resp.LeaderID, resp.MemberID = res.code, res.generation, res.leader, res.memberID
		if res.code != 0 {
			resp.Generation = -1
		}
		if res.protocol != "" {
			p := res.protocol
			resp.Protocol = &p
		}
		if res.protocolType != "" {
			pt := res.protocolType
			resp.ProtocolType = &pt
		}
		for _, m := range res.members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.ProtocolMetadata = m.id, m.metadata
			if m.instanceID != "" {
				inst := m.instanceID
				rm.InstanceID = &inst
			}
			resp.Members = append(resp.Members, rm)
		}
		return resp
	case *kmsg.SyncGroupRequest:
		resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
		assignments := map[string][]byte{}
		for _, a := range req.GroupAssignment {
			assignments[a.MemberID] = a.MemberAssignment
		}
		res := c.sync(ctx, shard(req.Group), req.Group, req.MemberID, req.Generation, assignments)
		resp.ErrorCode, resp.MemberAssignment = res.code, res.assignment
		resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
		return resp
	case *kmsg.HeartbeatRequest:
		resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = c.heartbeat(shard(req.Group), req.Group, req.MemberID, req.Generation)
		return resp
	case *kmsg.LeaveGroupRequest:
		resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
		ids, insts := []string{req.MemberID}, []string{""}
		if req.Version >= 3 {
			ids, insts = nil, nil
			for _, m := range req.Members {
				ids = append(ids, m.MemberID)
				insts = append(insts, deref(m.InstanceID))
			}
		}
		code, codes := c.leave(shard(req.Group), req.Group, ids, insts)
		resp.ErrorCode = code
		if req.Version >= 3 {
			for i := range ids {
				rm := kmsg.NewLeaveGroupResponseMember()
				rm.MemberID = ids[i]
				if insts[i] != "" {
					inst := insts[i]
					rm.InstanceID = &inst
				}
				if i < len(codes) {
					rm.ErrorCode = codes[i]
				}
				resp.Members = append(resp.Members, rm)
			}
		} else if code == 0 && len(codes) == 1 {
			resp.ErrorCode = codes[0]
		}
		return resp
	case *kmsg.OffsetCommitRequest:
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
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
		code := c.commit(ctx, shard(req.Group), req.Group, req.MemberID, gen, offsets)
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition, rp.ErrorCode = p.Partition, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		if req.Version >= 8 {
			for _, rg := range req.Groups {
				tps := requested(rg.Topics, func(t kmsg.OffsetFetchRequestGroupTopic) (string, []int32) { return t.Topic, t.Partitions })
				offs, code := c.fetch(shard(rg.Group), rg.Group, tps)
				g := kmsg.NewOffsetFetchResponseGroup()
				g.Group, g.ErrorCode = rg.Group, code
				for topic, parts := range fetchTopics(tps, offs) {
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
			return resp
		}
		tps := requested(req.Topics, func(t kmsg.OffsetFetchRequestTopic) (string, []int32) { return t.Topic, t.Partitions })
		offs, code := c.fetch(shard(req.Group), req.Group, tps)
		resp.ErrorCode = code
		for topic, parts := range fetchTopics(tps, offs) {
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
		return resp
	case *kmsg.DescribeGroupsRequest:
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, name := range req.Groups {
			resp.Groups = append(resp.Groups, c.describe(shard(name), name))
		}
		return resp
	case *kmsg.ListGroupsRequest:
		resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
		for _, g := range c.list(req.StatesFilter) {
			resp.Groups = append(resp.Groups, g)
		}
		return resp
	case *kmsg.DeleteGroupsRequest:
		resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
		for _, name := range req.Groups {
			rg := kmsg.NewDeleteGroupsResponseGroup()
			rg.Group, rg.ErrorCode = name, c.deleteGroup(ctx, shard(name), name)
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	case *kmsg.OffsetDeleteRequest:
		resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
		var tps []TopicPartition
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tps = append(tps, TopicPartition{t.Topic, p.Partition})
			}
		}
		resp.ErrorCode = c.deleteOffsets(ctx, shard(req.Group), req.Group, tps)
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetDeleteResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetDeleteResponseTopicPartition()
				rp.Partition = p.Partition
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	return nil
}

type fetched struct {
	tp TopicPartition
	o  Committed
}

// fetchTopics lays out OffsetFetch answers: every partition asked for
// (offset -1 when nothing is committed), or every committed one.
func fetchTopics(tps []TopicPartition, offs map[TopicPartition]Committed) map[string][]fetched {
	out := map[string][]fetched{}
	if tps == nil {
		for tp, o := range offs {
			out[tp.Topic] = append(out[tp.Topic], fetched{tp, o})
		}
		return out
	}
	for _, tp := range tps {
		o, ok := offs[tp]
		if !ok {
			o = Committed{Offset: -1, LeaderEpoch: -1}
		}
		out[tp.Topic] = append(out[tp.Topic], fetched{tp, o})
	}
	return out
}

func (c *Coordinator) describe(shardID int32, name string) kmsg.DescribeGroupsResponseGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	rg := kmsg.NewDescribeGroupsResponseGroup()
	rg.Group = name
	_, g, err := c.groupLocked(shardID, name, false)
	if err != nil {
		rg.ErrorCode = codeOf(err)
		return rg
	}
	if g == nil {
		rg.State = string(Dead)
		return rg
	}
	rg.State, rg.ProtocolType, rg.Protocol = string(g.state), g.protocolType, g.protocol
	for _, id := range memberIDs(g) {
		m := g.members[id]
		rm := kmsg.NewDescribeGroupsResponseGroupMember()
		rm.MemberID, rm.ClientID, rm.ClientHost = id, m.clientID, m.clientHost
		if m.instanceID != "" {
			inst := m.instanceID
			rm.InstanceID = &inst
		}
		rm.ProtocolMetadata, rm.MemberAssignment = m.metadataFor(g.protocol), m.assignment
		rg.Members = append(rg.Members, rm)
	}
	return rg
}

func (c *Coordinator) list(states []string) []kmsg.ListGroupsResponseGroup {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []kmsg.ListGroupsResponseGroup
	for _, s := range c.shards {
		select {
		case <-s.ready:
		default:
			continue
		}
		for _, g := range s.groups {
			if len(states) > 0 && !contains(states, string(g.state)) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState = g.name, g.protocolType, string(g.state)
			out = append(out, lg)
		}
	}
	return out
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// memberlessGroupLocked finds a group that may lose state: it exists and
// has no members (busy is the error code when it has some).
func (c *Coordinator) memberlessGroupLocked(shardID int32, name string, busy int16) (*shard, *group, int16) {
	s, g, err := c.groupLocked(shardID, name, false)
	switch {
	case err != nil:
		return nil, nil, codeOf(err)
	case g == nil:
		return nil, nil, kerr.GroupIDNotFound.Code
	case len(g.members) > 0:
		return nil, nil, busy
	}
	return s, g, 0
}

// deleteGroup removes an empty group and its offsets.
func (c *Coordinator) deleteGroup(ctx context.Context, shardID int32, name string) int16 {
	c.mu.Lock()
	s, g, code := c.memberlessGroupLocked(shardID, name, kerr.NonEmptyGroup.Code)
	if code != 0 {
		c.mu.Unlock()
		return code
	}
	recs := recordKVs{groupTombstone(name)}
	for tp := range g.offsets {
		recs = append(recs, offsetTombstone(name, tp))
	}
	c.mu.Unlock()
	if err := s.log.Commit(ctx, recs.records()); err != nil {
		return codeOf(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := s.groups[name]; cur != nil && len(cur.members) == 0 {
		delete(s.groups, name)
	}
	return 0
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
