package protocol

// CreateTopics v0-v7: partitions and replication factor (-1 takes the
// broker's defaults), topic configs, validate-only (v1+). v5+ answers with
// the created topic's partitions, replication factor and configs. Manual
// replica assignment is refused (INVALID_REQUEST). Needs CREATE on the
// cluster or the topic (TOPIC_AUTHORIZATION_FAILED).

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(19, 0, 7, handleCreateTopics) }

func handleCreateTopics(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	timeout := time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond
	return reply{later: func(ctx context.Context) kmsg.Response {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		seen := map[string]int{}
		for _, rt := range req.Topics {
			seen[rt.Topic]++
		}
		for _, rt := range req.Topics {
			st := kmsg.NewCreateTopicsResponseTopic()
			st.Topic = rt.Topic
			st.NumPartitions, st.ReplicationFactor = -1, -1
			var err error
			switch {
			case seen[rt.Topic] > 1:
				err = fmt.Errorf("%w: topic %q named twice", ErrInvalidRequest, rt.Topic)
			case !c.allowedCluster(acl.OpCreate) && !c.allowedTopic(acl.OpCreate, rt.Topic):
				err = ErrTopicAuthorization
			case len(rt.ReplicaAssignment) > 0:
				err = fmt.Errorf("%w: manual replica assignment is not supported", ErrInvalidRequest)
			}
			var t TopicInfo
			if err == nil {
				spec := TopicSpec{Name: rt.Topic, Partitions: rt.NumPartitions, ReplicationFactor: rt.ReplicationFactor, Configs: map[string]string{}}
				for _, cf := range rt.Configs {
					if cf.Value != nil {
						spec.Configs[cf.Name] = *cf.Value
					}
				}
				t, err = c.s.backend.CreateTopic(ctx, spec, req.ValidateOnly)
			}
			if err != nil {
				st.ErrorCode = errorCode(err)
				st.ErrorMessage = errorMessage(err)
			} else {
				st.TopicID = t.ID
				st.NumPartitions = int32(len(t.Partitions))
				if len(t.Partitions) > 0 {
					st.ReplicationFactor = int16(len(t.Partitions[0].Replicas))
				}
				if !c.allowedTopic(acl.OpDescribeConfigs, rt.Topic) {
					st.ConfigErrorCode = kerr.TopicAuthorizationFailed.Code
				} else if entries, err := c.s.backend.TopicConfigs(rt.Topic); err == nil {
					for _, e := range entries {
						cf := kmsg.NewCreateTopicsResponseTopicConfig()
						cf.Name, cf.Value, cf.ReadOnly, cf.IsSensitive = e.Name, e.Value, e.ReadOnly, e.Sensitive
						cf.Source = int8(configSource(e, kmsg.ConfigResourceTypeTopic))
						st.Configs = append(st.Configs, cf)
					}
				}
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp
	}}, nil
}
