package group

// ListGroups: the groups of the offsets partitions loaded here; v4+ filters.

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register((*Coordinator).handleListGroups) }

func (c *Coordinator) handleListGroups(_ context.Context, _ call, req *kmsg.ListGroupsRequest, resp *kmsg.ListGroupsResponse) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.loadedShardsLocked() {
		for _, g := range s.groups {
			if len(req.StatesFilter) > 0 && !slices.Contains(req.StatesFilter, string(g.state)) {
				continue
			}
			lg := kmsg.NewListGroupsResponseGroup()
			lg.Group, lg.ProtocolType, lg.GroupState = g.name, g.protocolType, string(g.state)
			resp.Groups = append(resp.Groups, lg)
		}
	}
}
