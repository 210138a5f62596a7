package group

// LeaveGroup: v0-v2 remove one member by id; v3+ a batch, by member id or
// (static members) group.instance.id, with an error code for each.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleLeaveGroup) }

func (c *Coordinator) handleLeaveGroup(_ context.Context, r call, req *kmsg.LeaveGroupRequest, resp *kmsg.LeaveGroupResponse) {
	ids, insts := []string{req.MemberID}, []string{""}
	if req.Version >= 3 {
		ids, insts = nil, nil
		for _, m := range req.Members {
			ids = append(ids, m.MemberID)
			insts = append(insts, deref(m.InstanceID))
		}
	}
	code, codes := c.leave(r.shard(req.Group), req.Group, ids, insts)
	resp.ErrorCode = code
	if req.Version < 3 {
		if code == 0 && len(codes) == 1 {
			resp.ErrorCode = codes[0]
		}
		return
	}
	for i := range ids {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = ids[i], optional(insts[i])
		if i < len(codes) {
			rm.ErrorCode = codes[i]
		}
		resp.Members = append(resp.Members, rm)
	}
}

// leave removes members (by id, or by instance id for static members).
func (c *Coordinator) leave(shardID int32, groupName string, ids, instanceIDs []string) (int16, []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, g, err := c.groupLocked(shardID, groupName, false)
	if err == nil && g == nil {
		err = kerr.UnknownMemberID
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
