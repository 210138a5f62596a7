package protocol

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/group"
)

// groupHandler passes a consumer-group request to the coordinator (package
// group, a file per API key) on its own goroutine: a JoinGroup waits for the
// rebalance. Only the broker leading the group's __consumer_offsets partition
// coordinates it; elsewhere NOT_COORDINATOR sends clients to look again.
//
// Authorization happens here, before the coordinator sees the request
// (authorizeGroupRequest): what the principal may not touch is answered
// with GROUP_ or TOPIC_AUTHORIZATION_FAILED, or left out of lists.
func groupHandler(c *conn, req kmsg.Request) (reply, error) {
	clientID := c.clientID
	host := c.host()
	denied, finish := c.authorizeGroupRequest(req)
	if denied != nil {
		return reply{resp: denied}, nil
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		resp := c.s.backend.Group(ctx, clientID, "/"+host, req)
		if finish != nil {
			finish(resp)
		}
		return resp
	}}, nil
}

// authorizeGroupRequest applies Kafka's ACL checks to a group request:
// either a whole response refusing it, or the request trimmed of what the
// principal may not touch and a finish that adds the refusals to (or
// removes hidden entries from) the coordinator's response.
func (c *conn) authorizeGroupRequest(kreq kmsg.Request) (denied kmsg.Response, finish func(kmsg.Response)) {
	if !c.s.cfg.Authorize {
		return nil, nil
	}
	groupCode := func(op acl.Operation, group string) int16 {
		if c.allowedGroup(op, group) {
			return 0
		}
		return kerr.GroupAuthorizationFailed.Code
	}
	switch req := kreq.(type) {
	case *kmsg.JoinGroupRequest:
		if code := groupCode(acl.OpRead, req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
			resp.ErrorCode = code
			return resp, nil
		}
	case *kmsg.SyncGroupRequest:
		if code := groupCode(acl.OpRead, req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
			resp.ErrorCode = code
			return resp, nil
		}
	case *kmsg.HeartbeatRequest:
		if code := groupCode(acl.OpRead, req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
			resp.ErrorCode = code
			return resp, nil
		}
	case *kmsg.LeaveGroupRequest:
		if code := groupCode(acl.OpRead, req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
			resp.ErrorCode = code
			return resp, nil
		}
	case *kmsg.OffsetCommitRequest:
		return c.authorizeOffsetCommit(req)
	case *kmsg.TxnOffsetCommitRequest:
		return c.authorizeTxnOffsetCommit(req)
	case *kmsg.OffsetFetchRequest:
		return c.authorizeOffsetFetch(req)
	case *kmsg.DescribeGroupsRequest:
		return nil, func(r kmsg.Response) {
			resp := r.(*kmsg.DescribeGroupsResponse)
			for i, g := range resp.Groups {
				if code := groupCode(acl.OpDescribe, g.Group); code != 0 {
					ng := kmsg.NewDescribeGroupsResponseGroup()
					ng.Group, ng.ErrorCode = g.Group, code
					resp.Groups[i] = ng
				}
			}
		}
	case *kmsg.ListGroupsRequest:
		if c.allowedCluster(acl.OpDescribe) {
			return nil, nil
		}
		return nil, func(r kmsg.Response) {
			resp := r.(*kmsg.ListGroupsResponse)
			resp.Groups = slices.DeleteFunc(resp.Groups, func(g kmsg.ListGroupsResponseGroup) bool {
				return groupCode(acl.OpDescribe, g.Group) != 0
			})
		}
	case *kmsg.DeleteGroupsRequest:
		var refused []string
		req.Groups = slices.DeleteFunc(req.Groups, func(g string) bool {
			if groupCode(acl.OpDelete, g) != 0 {
				refused = append(refused, g)
				return true
			}
			return false
		})
		return nil, func(r kmsg.Response) {
			resp := r.(*kmsg.DeleteGroupsResponse)
			for _, g := range refused {
				rg := kmsg.NewDeleteGroupsResponseGroup()
				rg.Group, rg.ErrorCode = g, kerr.GroupAuthorizationFailed.Code
				resp.Groups = append(resp.Groups, rg)
			}
		}
	case *kmsg.OffsetDeleteRequest:
		if code := groupCode(acl.OpDelete, req.Group); code != 0 {
			resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
			resp.ErrorCode = code
			return resp, nil
		}
		var refused []kmsg.OffsetDeleteRequestTopic
		req.Topics = slices.DeleteFunc(req.Topics, func(t kmsg.OffsetDeleteRequestTopic) bool {
			if !c.allowedTopic(acl.OpRead, t.Topic) {
				refused = append(refused, t)
				return true
			}
			return false
		})
		return nil, func(r kmsg.Response) {
			resp := r.(*kmsg.OffsetDeleteResponse)
			for _, t := range refused {
				rt := kmsg.NewOffsetDeleteResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetDeleteResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p.Partition, kerr.TopicAuthorizationFailed.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
		}
	}
	return nil, nil
}

// authorizeOffsetCommit needs READ on the group (every partition refused
// otherwise) and READ on each topic (its partitions refused).
func (c *conn) authorizeOffsetCommit(req *kmsg.OffsetCommitRequest) (kmsg.Response, func(kmsg.Response)) {
	if !c.allowedGroup(acl.OpRead, req.Group) {
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		resp.Topics = group.OffsetCommitResults(req.Topics, kerr.GroupAuthorizationFailed.Code)
		return resp, nil
	}
	var refused []kmsg.OffsetCommitRequestTopic
	req.Topics = slices.DeleteFunc(req.Topics, func(t kmsg.OffsetCommitRequestTopic) bool {
		if !c.allowedTopic(acl.OpRead, t.Topic) {
			refused = append(refused, t)
			return true
		}
		return false
	})
	if len(refused) == 0 {
		return nil, nil
	}
	return nil, func(r kmsg.Response) {
		resp := r.(*kmsg.OffsetCommitResponse)
		resp.Topics = append(resp.Topics, group.OffsetCommitResults(refused, kerr.TopicAuthorizationFailed.Code)...)
	}
}

// authorizeOffsetFetch needs DESCRIBE on the group; topics the principal
// may not DESCRIBE are refused when named and left out when the request
// asks for all.
func (c *conn) authorizeOffsetFetch(req *kmsg.OffsetFetchRequest) (kmsg.Response, func(kmsg.Response)) {
	describable := func(topic string) bool { return c.allowedTopic(acl.OpDescribe, topic) }
	if req.Version < 8 {
		if !c.allowedGroup(acl.OpDescribe, req.Group) {
			resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
			resp.ErrorCode = kerr.GroupAuthorizationFailed.Code
			for _, t := range req.Topics {
				rt := kmsg.NewOffsetFetchResponseTopic()
				rt.Topic = t.Topic
				for _, p := range t.Partitions {
					rp := kmsg.NewOffsetFetchResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p, kerr.GroupAuthorizationFailed.Code
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			return resp, nil
		}
		named := req.Topics != nil
		return nil, func(r kmsg.Response) {
			resp := r.(*kmsg.OffsetFetchResponse)
			resp.Topics = slices.DeleteFunc(resp.Topics, func(t kmsg.OffsetFetchResponseTopic) bool { return !named && !describable(t.Topic) })
			for i := range resp.Topics {
				if !describable(resp.Topics[i].Topic) {
					for j := range resp.Topics[i].Partitions {
						p := &resp.Topics[i].Partitions[j]
						p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, kerr.TopicAuthorizationFailed.Code
					}
				}
			}
		}
	}
	var refused []string
	named := map[string]bool{}
	req.Groups = slices.DeleteFunc(req.Groups, func(g kmsg.OffsetFetchRequestGroup) bool {
		named[g.Group] = g.Topics != nil
		if !c.allowedGroup(acl.OpDescribe, g.Group) {
			refused = append(refused, g.Group)
			return true
		}
		return false
	})
	return nil, func(r kmsg.Response) {
		resp := r.(*kmsg.OffsetFetchResponse)
		for i := range resp.Groups {
			g := &resp.Groups[i]
			g.Topics = slices.DeleteFunc(g.Topics, func(t kmsg.OffsetFetchResponseGroupTopic) bool { return !named[g.Group] && !describable(t.Topic) })
			for j := range g.Topics {
				if !describable(g.Topics[j].Topic) {
					for k := range g.Topics[j].Partitions {
						p := &g.Topics[j].Partitions[k]
						p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode = -1, -1, nil, kerr.TopicAuthorizationFailed.Code
					}
				}
			}
		}
		for _, name := range refused {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = name, kerr.GroupAuthorizationFailed.Code
			resp.Groups = append(resp.Groups, rg)
		}
	}
}

// authorizeTxnOffsetCommit needs WRITE on the transactional id, READ on the
// group and on each topic; a refusal answers every partition.
func (c *conn) authorizeTxnOffsetCommit(req *kmsg.TxnOffsetCommitRequest) (kmsg.Response, func(kmsg.Response)) {
	code := int16(0)
	switch {
	case !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, req.TransactionalID):
		code = kerr.TransactionalIDAuthorizationFailed.Code
	case !c.allowedGroup(acl.OpRead, req.Group):
		code = kerr.GroupAuthorizationFailed.Code
	}
	topicRefused := false
	for _, t := range req.Topics {
		topicRefused = topicRefused || !c.allowedTopic(acl.OpRead, t.Topic)
	}
	if code == 0 && !topicRefused {
		return nil, nil
	}
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	for _, t := range req.Topics {
		tc := code
		if tc == 0 {
			tc = kerr.OperationNotAttempted.Code
			if !c.allowedTopic(acl.OpRead, t.Topic) {
				tc = kerr.TopicAuthorizationFailed.Code
			}
		}
		resp.Topics = append(resp.Topics, group.TxnOffsetCommitResults([]kmsg.TxnOffsetCommitRequestTopic{t}, tc)...)
	}
	return resp, nil
}
