package broker

// Reassignment and leader election requests: the controller decides
// (cluster/reassign.go); any broker forwards to it, and lists the
// reassignments in progress from its copy of the metadata.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/protocol"
)

// Reassign starts, replaces or cancels reassignments through the
// controller.
func (b *Broker) Reassign(ctx context.Context, changes []protocol.Reassignment) ([]error, error) {
	return controllerClient{b}.Reassign(ctx, changes)
}

// reassignLocal is the controller's side of Reassign.
func (b *Broker) reassignLocal(ctx context.Context, changes []protocol.Reassignment) ([]error, error) {
	st := b.cl.fsm.State()
	errs := make([]error, len(changes))
	var send []cluster.ReassignChange
	var at []int
	for i, ch := range changes {
		if ch.KeepReplicationFactor && ch.Replicas != nil {
			if t := st.Topics[ch.Topic]; t != nil && int(ch.Partition) < len(t.Partitions) && ch.Partition >= 0 {
				if orig := t.Partitions[ch.Partition].OriginalReplicas(); len(orig) != len(ch.Replicas) {
					errs[i] = fmt.Errorf("%w: %d replicas for %s-%d, which has %d, and the request keeps the replication factor",
						protocol.ErrInvalidReplication, len(ch.Replicas), ch.Topic, ch.Partition, len(orig))
					continue
				}
			}
		}
		send = append(send, cluster.ReassignChange{Topic: ch.Topic, Partition: ch.Partition, Target: ch.Replicas})
		at = append(at, i)
	}
	if len(send) > 0 {
		res, err := b.cl.ctrl.Reassign(ctx, send)
		if err != nil {
			return nil, protocol.Sentinel(err)
		}
		for j, err := range res {
			errs[at[j]] = protocol.Sentinel(err)
		}
	}
	return errs, nil
}

// Reassignments lists the reassignments in progress (parts nil: all).
func (b *Broker) Reassignments(parts map[string][]int32) []protocol.Reassignment {
	st := b.cl.fsm.State()
	var out []protocol.Reassignment
	for _, name := range st.TopicNames() {
		want, named := parts[name]
		if parts != nil && !named {
			continue
		}
		for i, p := range st.Topics[name].Partitions {
			if !p.Reassigning() || (parts != nil && !slices.Contains(want, int32(i))) {
				continue
			}
			out = append(out, protocol.Reassignment{Topic: name, Partition: int32(i), Replicas: slices.Clone(p.Replicas),
				Adding: slices.Clone(p.AddingReplicas), Removing: slices.Clone(p.RemovingReplicas)})
		}
	}
	return out
}

// ElectLeaders elects leaders through the controller.
func (b *Broker) ElectLeaders(ctx context.Context, typ int8, parts map[string][]int32) ([]protocol.Election, error) {
	return controllerClient{b}.ElectLeaders(ctx, typ, parts)
}

func (b *Broker) electLeadersLocal(ctx context.Context, typ int8, parts map[string][]int32) ([]protocol.Election, error) {
	res, err := b.cl.ctrl.ElectLeaders(ctx, typ, parts)
	if err != nil {
		return nil, protocol.Sentinel(err)
	}
	out := make([]protocol.Election, len(res))
	for i, r := range res {
		out[i] = protocol.Election{Topic: r.Topic, Partition: r.Partition, Err: protocol.Sentinel(r.Err)}
	}
	return out, nil
}

// Reassign on the controller, or forwarded to it.
func (c controllerClient) Reassign(ctx context.Context, changes []protocol.Reassignment) ([]error, error) {
	if c.local() {
		return c.b.reassignLocal(ctx, changes)
	}
	req := kmsg.NewPtrAlterPartitionAssignmentsRequest()
	req.Version, req.TimeoutMillis, req.AllowReplicationFactorChange = 1, 10_000, true
	for _, ch := range changes {
		if ch.KeepReplicationFactor {
			req.AllowReplicationFactorChange = false // one request carries one setting
		}
		rt := kmsg.NewAlterPartitionAssignmentsRequestTopic()
		rt.Topic = ch.Topic
		rp := kmsg.NewAlterPartitionAssignmentsRequestTopicPartition()
		rp.Partition, rp.Replicas = ch.Partition, ch.Replicas
		rt.Partitions = []kmsg.AlterPartitionAssignmentsRequestTopicPartition{rp}
		req.Topics = append(req.Topics, rt)
	}
	resp, err := forward[*kmsg.AlterPartitionAssignmentsResponse](ctx, c, req)
	if err != nil {
		return nil, err
	}
	if err := protocol.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	var errs []error
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			errs = append(errs, codeErr(rp.ErrorCode, rp.ErrorMessage))
		}
	}
	if len(errs) != len(changes) {
		return nil, fmt.Errorf("%w: AlterPartitionReassignments answered %d of %d partitions", errMalformed, len(errs), len(changes))
	}
	return errs, nil
}

// ElectLeaders on the controller, or forwarded to it.
func (c controllerClient) ElectLeaders(ctx context.Context, typ int8, parts map[string][]int32) ([]protocol.Election, error) {
	if c.local() {
		return c.b.electLeadersLocal(ctx, typ, parts)
	}
	req := kmsg.NewPtrElectLeadersRequest()
	req.Version, req.ElectionType, req.TimeoutMillis = 2, typ, 10_000
	if parts != nil {
		req.Topics = []kmsg.ElectLeadersRequestTopic{}
		for topic, ps := range parts {
			req.Topics = append(req.Topics, kmsg.ElectLeadersRequestTopic{Topic: topic, Partitions: ps})
		}
	}
	resp, err := forward[*kmsg.ElectLeadersResponse](ctx, c, req)
	if err != nil {
		return nil, err
	}
	if err := protocol.ErrorForCode(resp.ErrorCode); err != nil {
		return nil, err
	}
	var out []protocol.Election
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			out = append(out, protocol.Election{Topic: rt.Topic, Partition: rp.Partition, Err: codeErr(rp.ErrorCode, rp.ErrorMessage)})
		}
	}
	return out, nil
}

// codeErr is the error a forwarded response's code and message name.
func codeErr(code int16, msg *string) error {
	err := protocol.ErrorForCode(code)
	if err != nil && msg != nil {
		return fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

// UnregisterBroker decommissions a broker through the controller.
func (b *Broker) UnregisterBroker(ctx context.Context, id int32) error {
	return controllerClient{b}.UnregisterBroker(ctx, id)
}

// UnregisterBroker on the controller, or forwarded to it.
func (c controllerClient) UnregisterBroker(ctx context.Context, id int32) error {
	if c.local() {
		return protocol.Sentinel(c.b.cl.ctrl.Unregister(ctx, id))
	}
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = id
	resp, err := forward[*kmsg.UnregisterBrokerResponse](ctx, c, req)
	if err != nil {
		return err
	}
	return codeErr(resp.ErrorCode, resp.ErrorMessage)
}
