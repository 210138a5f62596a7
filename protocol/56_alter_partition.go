package protocol

// AlterPartition v0-v1 (topic names): a partition leader's ISR change, sent
// to the controller; other brokers answer NOT_CONTROLLER. Brokers only:
// needs CLUSTER_ACTION.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(56, 0, 1, handleAlterPartition) }

func handleAlterPartition(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.AlterPartitionRequest)
	resp := req.ResponseKind().(*kmsg.AlterPartitionResponse)
	if !c.allowedCluster(acl.OpClusterAction) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}, nil
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		for _, rt := range req.Topics {
			st := kmsg.NewAlterPartitionResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewAlterPartitionResponseTopicPartition()
				sp.Partition = rp.Partition
				epoch, err := c.s.backend.AlterISR(ctx, ISRChange{Topic: rt.Topic, Partition: rp.Partition, Leader: req.BrokerID,
					LeaderEpoch: rp.LeaderEpoch, PartitionEpoch: rp.PartitionEpoch, ISR: rp.NewISR})
				sp.ErrorCode = errorCode(err)
				if err == nil {
					sp.LeaderID, sp.LeaderEpoch, sp.ISR, sp.PartitionEpoch = req.BrokerID, rp.LeaderEpoch, rp.NewISR, epoch
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}}, nil
}
