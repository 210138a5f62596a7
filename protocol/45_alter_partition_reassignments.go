package protocol

// AlterPartitionReassignments v0-v1 (KIP-455): start, replace or cancel
// (null replicas) partition reassignments; the controller carries them
// out (cluster/reassign.go). Needs ALTER on the cluster. v1's
// allow_replication_factor_change=false refuses a target of another size
// (INVALID_REPLICATION_FACTOR).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(45, 0, 1, handleAlterPartitionReassignments) }

func handleAlterPartitionReassignments(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AlterPartitionAssignmentsRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	if !c.allowedCluster(acl.OpAlter) {
		resp.ErrorCode = errorCode(ErrClusterAuthorization)
		return reply{resp: resp}, nil
	}
	keepRF := req.Version >= 1 && !req.AllowReplicationFactorChange
	var changes []Reassignment
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			changes = append(changes, Reassignment{Topic: rt.Topic, Partition: rp.Partition, Replicas: rp.Replicas, KeepReplicationFactor: keepRF})
		}
	}
	timeout := time.Duration(max(req.TimeoutMillis, 1000)) * time.Millisecond
	return reply{later: func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		errs, err := c.s.backend.Reassign(ctx, changes)
		if err != nil {
			resp.ErrorCode, resp.ErrorMessage = errorCode(err), errorMessage(err)
			return resp
		}
		i := 0
		for _, rt := range req.Topics {
			st := kmsg.NewAlterPartitionAssignmentsResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
				sp.Partition = rp.Partition
				if i < len(errs) {
					sp.ErrorCode, sp.ErrorMessage = errorCode(errs[i]), errorMessage(errs[i])
				}
				i++
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}}, nil
}
