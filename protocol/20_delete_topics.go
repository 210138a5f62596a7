package protocol

// DeleteTopics v0-v6; v6 may name topics by id. Needs DELETE on the topic
// (TOPIC_AUTHORIZATION_FAILED).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(20, 0, 6, handleDeleteTopics) }

func handleDeleteTopics(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	for _, n := range req.TopicNames {
		targets = append(targets, target{name: &n})
	}
	for _, t := range req.Topics {
		targets = append(targets, target{name: t.Topic, id: t.TopicID})
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		for _, tg := range targets {
			st := kmsg.NewDeleteTopicsResponseTopic()
			st.Topic, st.TopicID = tg.name, tg.id
			var err error
			name := ""
			if tg.name != nil {
				name = *tg.name
			} else {
				var t TopicInfo
				t, err = topicByID(c.s.backend, tg.id)
				switch {
				case err != nil:
				case !c.allowedTopic(acl.OpDescribe, t.Name):
					// Not even its name for who may not describe it.
					err = kerr.UnknownTopicID
				default:
					name = t.Name
					st.Topic = &name
				}
			}
			if err == nil && !c.allowedTopic(acl.OpDelete, name) {
				err = ErrTopicAuthorization
			}
			if err == nil {
				err = c.s.backend.DeleteTopic(ctx, name)
			}
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}}, nil
}
