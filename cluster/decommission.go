package cluster

// Removing a broker for good (Kafka's UnregisterBroker, KIP-500): once no
// partition has a replica on it, the broker is marked decommissioned — no
// new topic or reassignment may use it — and leaves the Raft
// configuration; a live non-voter is promoted if it was a voter. The node
// may then be stopped; it is never added back.

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// ErrBrokerNotRegistered and ErrBrokerHasReplicas refuse an unregistration.
var (
	ErrBrokerNotRegistered = errors.New("cluster: broker not registered")
	ErrBrokerHasReplicas   = errors.New("cluster: broker still holds replicas")
)

// CmdUnregisterBroker is UnregisterBroker's command type.
const CmdUnregisterBroker = "unregister_broker"

// UnregisterBroker decommissions broker ID.
type UnregisterBroker struct {
	ID int32 `json:"id"`
}

// ReplicasOn counts the partitions with a replica on broker id.
func (s *State) ReplicasOn(id int32) int {
	n := 0
	for _, t := range s.Topics {
		for _, p := range t.Partitions {
			if slices.Contains(p.Replicas, id) {
				n++
			}
		}
	}
	return n
}

func (d *draft) applyUnregister(a UnregisterBroker) error {
	b := d.Brokers[a.ID]
	if b == nil {
		return fmt.Errorf("%w: %d", ErrBrokerNotRegistered, a.ID)
	}
	if n := d.ReplicasOn(a.ID); n > 0 {
		return fmt.Errorf("%w: broker %d holds %d", ErrBrokerHasReplicas, a.ID, n)
	}
	nb := *b
	nb.Decommissioned = true
	d.Brokers[a.ID] = &nb
	return nil
}

// Unregister decommissions a broker that holds no replica and takes it out
// of the Raft configuration. Controller only.
func (c *Controller) Unregister(ctx context.Context, id int32) error {
	st := c.node.FSM().State()
	b := st.Brokers[id]
	if b == nil {
		return fmt.Errorf("%w: %d", ErrBrokerNotRegistered, id)
	}
	if n := st.ReplicasOn(id); n > 0 {
		return fmt.Errorf("%w: broker %d holds %d (move them first: mlog broker decommission)", ErrBrokerHasReplicas, id, n)
	}
	if !b.Decommissioned {
		if _, err := c.node.Apply(ctx, CmdUnregisterBroker, UnregisterBroker{ID: id}); err != nil {
			return err
		}
	}
	servers, err := c.node.Servers()
	if err != nil {
		return err
	}
	if _, ok := servers[b.Name]; ok {
		if err := c.node.RemoveServer(b.Name); err != nil {
			return fmt.Errorf("cluster: remove %s from raft: %w", b.Name, err)
		}
	}
	c.log.Info("broker decommissioned", "broker", b.Name, "id", id)
	c.Wake() // promote a non-voter if a voter went
	return nil
}
