package group

// DescribeGroups: a group this coordinator does not know is Dead, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleDescribeGroups) }

func (c *Coordinator) handleDescribeGroups(_ context.Context, r call, req *kmsg.DescribeGroupsRequest, resp *kmsg.DescribeGroupsResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = name
		_, g, err := c.groupLocked(r.shard(name), name, false)
		switch {
		case err != nil:
			rg.ErrorCode = codeOf(err)
		case g == nil:
			rg.State = string(Dead)
		default:
			rg.State, rg.ProtocolType, rg.Protocol = string(g.state), g.protocolType, g.protocol
			for _, id := range memberIDs(g) {
				m := g.members[id]
				rm := kmsg.NewDescribeGroupsResponseGroupMember()
				rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = id, optional(m.instanceID), m.clientID, m.clientHost
				rm.ProtocolMetadata, rm.MemberAssignment = m.metadataFor(g.protocol), m.assignment
				rg.Members = append(rg.Members, rm)
			}
		}
		resp.Groups = append(resp.Groups, rg)
	}
}
