package protocol

// FindCoordinator v0-v4 for consumer groups (key type 0) and transactional
// ids (1). The coordinator of group g leads partition hash(g) % n of
// __consumer_offsets, that of transactional id t partition hash(t) % n of
// __transaction_state; the topic is created on first need, meanwhile
// COORDINATOR_NOT_AVAILABLE (clients retry). Needs DESCRIBE on the group
// (GROUP_AUTHORIZATION_FAILED) or the transactional id
// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(10, 0, 4, handleFindCoordinator) }

func handleFindCoordinator(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	return reply{later: func(ctx context.Context) kmsg.Response {
		find := func(key string) (BrokerInfo, int16, *string) {
			switch req.CoordinatorType {
			case 0:
				if !c.allowedGroup(acl.OpDescribe, key) {
					return BrokerInfo{NodeID: -1}, kerr.GroupAuthorizationFailed.Code, nil
				}
			case 1:
				if !c.allowed(acl.OpDescribe, acl.ResourceTransactionalID, key) {
					return BrokerInfo{NodeID: -1}, kerr.TransactionalIDAuthorizationFailed.Code, nil
				}
			default:
				return BrokerInfo{NodeID: -1}, kerr.InvalidRequest.Code, kmsg.StringPtr("unknown coordinator type")
			}
			b, err := c.s.backend.FindCoordinator(ctx, req.CoordinatorType, key, c.s.cfg.Listener)
			if err != nil {
				return BrokerInfo{NodeID: -1}, errorCode(err), errorMessage(err)
			}
			return b, 0, nil
		}
		if req.Version >= 4 {
			for _, key := range req.CoordinatorKeys {
				b, code, msg := find(key)
				rc := kmsg.NewFindCoordinatorResponseCoordinator()
				rc.Key, rc.NodeID, rc.Host, rc.Port, rc.ErrorCode, rc.ErrorMessage = key, b.NodeID, b.Host, b.Port, code, msg
				resp.Coordinators = append(resp.Coordinators, rc)
			}
			return resp
		}
		b, code, msg := find(req.CoordinatorKey)
		resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = b.NodeID, b.Host, b.Port, code
		if req.Version >= 1 {
			resp.ErrorMessage = msg
		}
		return resp
	}}, nil
}
