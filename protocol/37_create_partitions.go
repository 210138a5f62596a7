package protocol

// CreatePartitions v0-v3: grow a topic to Count partitions (validate-only
// supported). Manual assignment is refused. Needs ALTER on the topic
// (TOPIC_AUTHORIZATION_FAILED).

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(37, 0, 3, handleCreatePartitions) }

func handleCreatePartitions(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	return reply{later: func(ctx context.Context) kmsg.Response {
		for _, rt := range req.Topics {
			st := kmsg.NewCreatePartitionsResponseTopic()
			st.Topic = rt.Topic
			var err error
			switch {
			case !c.allowedTopic(acl.OpAlter, rt.Topic):
				err = ErrTopicAuthorization
			case len(rt.Assignment) > 0:
				err = fmt.Errorf("%w: manual partition assignment is not supported", ErrInvalidRequest)
			default:
				err = c.s.backend.CreatePartitions(ctx, rt.Topic, rt.Count, req.ValidateOnly)
			}
			st.ErrorCode = errorCode(err)
			st.ErrorMessage = errorMessage(err)
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}}, nil
}
