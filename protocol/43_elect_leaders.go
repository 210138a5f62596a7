package protocol

// ElectLeaders v0-v2 (KIP-183, KIP-460): make each named partition's
// preferred replica (its first) lead, or elect a leader for a leaderless
// partition even from outside the ISR (unclean, which may lose
// acknowledged records). Null topics means every partition. Needs ALTER on
// the cluster. Per partition: ELECTION_NOT_NEEDED,
// PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE.

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(43, 0, 2, handleElectLeaders) }

func handleElectLeaders(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ElectLeadersRequest)
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	if !c.allowedCluster(acl.OpAlter) {
		resp.ErrorCode = errorCode(ErrClusterAuthorization)
		for _, rt := range req.Topics {
			st := kmsg.NewElectLeadersResponseTopic()
			st.Topic = rt.Topic
			for _, p := range rt.Partitions {
				sp := kmsg.NewElectLeadersResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, resp.ErrorCode
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return reply{resp: resp}, nil
	}
	parts := partitionsNamed(req.Topics, func(rt kmsg.ElectLeadersRequestTopic) (string, []int32) { return rt.Topic, rt.Partitions })
	typ := int8(0) // v0 is preferred only
	if req.Version >= 1 {
		typ = req.ElectionType
	}
	timeout := time.Duration(max(req.TimeoutMillis, 1000)) * time.Millisecond
	return reply{later: func(ctx context.Context) kmsg.Response {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		results, err := c.s.backend.ElectLeaders(ctx, typ, parts)
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp
		}
		byTopic := map[string]int{}
		for _, r := range results {
			i, ok := byTopic[r.Topic]
			if !ok {
				st := kmsg.NewElectLeadersResponseTopic()
				st.Topic = r.Topic
				resp.Topics = append(resp.Topics, st)
				i = len(resp.Topics) - 1
				byTopic[r.Topic] = i
			}
			sp := kmsg.NewElectLeadersResponseTopicPartition()
			sp.Partition, sp.ErrorCode, sp.ErrorMessage = r.Partition, errorCode(r.Err), errorMessage(r.Err)
			resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, sp)
		}
		return resp
	}}, nil
}
