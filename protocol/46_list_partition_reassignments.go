package protocol

// ListPartitionReassignments v0 (KIP-455): the reassignments in progress,
// with each partition's replicas and those being added and removed, from
// the replicated metadata. Needs DESCRIBE on the cluster.

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(46, 0, 0, handleListPartitionReassignments) }

func handleListPartitionReassignments(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ListPartitionReassignmentsRequest)
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	if !c.allowedCluster(acl.OpDescribe) {
		resp.ErrorCode = errorCode(ErrClusterAuthorization)
		return reply{resp: resp}, nil
	}
	parts := partitionsNamed(req.Topics, func(rt kmsg.ListPartitionReassignmentsRequestTopic) (string, []int32) { return rt.Topic, rt.Partitions })
	byTopic := map[string]int{}
	for _, r := range c.s.backend.Reassignments(parts) {
		i, ok := byTopic[r.Topic]
		if !ok {
			st := kmsg.NewListPartitionReassignmentsResponseTopic()
			st.Topic = r.Topic
			resp.Topics = append(resp.Topics, st)
			i = len(resp.Topics) - 1
			byTopic[r.Topic] = i
		}
		sp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		sp.Partition, sp.Replicas, sp.AddingReplicas, sp.RemovingReplicas = r.Partition, r.Replicas, r.Adding, r.Removing
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
	}
	return reply{resp: resp}, nil
}

// partitionsNamed is the partitions a request names by topic; nil (every
// partition) when its topic list is null.
func partitionsNamed[T any](topics []T, of func(T) (string, []int32)) map[string][]int32 {
	if topics == nil {
		return nil
	}
	parts := map[string][]int32{}
	for _, t := range topics {
		name, ps := of(t)
		parts[name] = append(parts[name], ps...)
	}
	return parts
}
