package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/protocol"
)

// aclIndex is the ACL set built from one version of the bindings: the
// metadata replaces the slice on every ACL change, so the slice's first
// element and length name the version.
type aclIndex struct {
	first *acl.Binding
	n     int
	set   *acl.Set
}

// ACLs returns the current bindings indexed for authorization, rebuilt
// only when they changed.
func (b *Broker) ACLs() *acl.Set {
	bindings := b.cl.fsm.State().ACLs
	var first *acl.Binding
	if len(bindings) > 0 {
		first = &bindings[0]
	}
	if cur := b.aclIndex.Load(); cur != nil && cur.first == first && cur.n == len(bindings) {
		return cur.set
	}
	idx := &aclIndex{first: first, n: len(bindings), set: acl.NewSet(bindings)}
	b.aclIndex.Store(idx)
	return idx.set
}

// ACLBindings lists every binding (read-only).
func (b *Broker) ACLBindings() []acl.Binding { return b.cl.fsm.State().ACLs }

// CreateACLs commits new bindings on the controller, forwarded there from
// any other broker.
func (b *Broker) CreateACLs(ctx context.Context, req *kmsg.CreateACLsRequest) (*kmsg.CreateACLsResponse, error) {
	c := controllerClient{b}
	if !c.local() {
		return forward[*kmsg.CreateACLsResponse](ctx, c, req)
	}
	return protocol.ApplyCreateACLs(req, func(bs []acl.Binding) error {
		return protocol.Sentinel(b.cl.ctrl.CreateACLs(ctx, bs))
	}), nil
}

// DeleteACLs removes the bindings the request's filters select, on the
// controller.
func (b *Broker) DeleteACLs(ctx context.Context, req *kmsg.DeleteACLsRequest) (*kmsg.DeleteACLsResponse, error) {
	c := controllerClient{b}
	if !c.local() {
		return forward[*kmsg.DeleteACLsResponse](ctx, c, req)
	}
	return protocol.ApplyDeleteACLs(req, b.cl.fsm.State().ACLs, func(bs []acl.Binding) error {
		return protocol.Sentinel(b.cl.ctrl.DeleteACLs(ctx, bs))
	}), nil
}
