package group

// DeleteGroups: NON_EMPTY_GROUP unless the group has no members.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleDeleteGroups) }

func (c *Coordinator) handleDeleteGroups(ctx context.Context, r call, req *kmsg.DeleteGroupsRequest, resp *kmsg.DeleteGroupsResponse) {
	for _, name := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group, rg.ErrorCode = name, c.deleteGroup(ctx, r.shard(name), name)
		resp.Groups = append(resp.Groups, rg)
	}
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
