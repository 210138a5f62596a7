package protocol

// FindCoordinator v0-v4 for consumer groups (key type 0). The coordinator
// of group g leads partition hash(g) % n of __consumer_offsets; the topic
// is created on first need, meanwhile COORDINATOR_NOT_AVAILABLE (clients
// retry). Transaction coordinators (key type 1) are not served. Needs
// DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED).

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
			if req.CoordinatorType != 0 {
				msg := "only consumer group coordinators are served"
				return BrokerInfo{NodeID: -1}, kerr.CoordinatorNotAvailable.Code, &msg
			}
			if !c.allowedGroup(acl.OpDescribe, key) {
				return BrokerInfo{NodeID: -1}, kerr.GroupAuthorizationFailed.Code, nil
			}
			b, err := c.s.backend.FindCoordinator(ctx, key, c.s.cfg.Listener)
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
