package cluster

import (
	"context"
	"slices"

	"github.com/mlog/mlog/acl"
)

// ACL command types.
const (
	CmdCreateACLs = "create_acls"
	CmdDeleteACLs = "delete_acls"
)

// CreateACLs adds bindings; one already present is not added twice. The
// controller validates them before proposing.
type CreateACLs struct {
	Bindings []acl.Binding `json:"bindings"`
}

// DeleteACLs removes exactly these bindings (the controller resolved
// DeleteAcls filters to them).
type DeleteACLs struct {
	Bindings []acl.Binding `json:"bindings"`
}

// applyCreateACLs builds a new slice: the published one is never changed.
func (d *draft) applyCreateACLs(c CreateACLs) {
	out := slices.Clone(d.ACLs)
	for _, b := range c.Bindings {
		if !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	d.ACLs = out
}

func (d *draft) applyDeleteACLs(c DeleteACLs) {
	d.ACLs = slices.DeleteFunc(slices.Clone(d.ACLs), func(b acl.Binding) bool { return slices.Contains(c.Bindings, b) })
}

// CreateACLs commits new bindings. Controller only.
func (c *Controller) CreateACLs(ctx context.Context, bindings []acl.Binding) error {
	_, err := c.node.Apply(ctx, CmdCreateACLs, CreateACLs{Bindings: bindings})
	return err
}

// DeleteACLs removes bindings. Controller only.
func (c *Controller) DeleteACLs(ctx context.Context, bindings []acl.Binding) error {
	_, err := c.node.Apply(ctx, CmdDeleteACLs, DeleteACLs{Bindings: bindings})
	return err
}
