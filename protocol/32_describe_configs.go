package protocol

// DescribeConfigs v0-v4 for topics and brokers (a broker id, or "" for
// the cluster-wide dynamic defaults). ConfigNames filters;
// synonyms and documentation are not reported. Needs DESCRIBE_CONFIGS on
// the topic (TOPIC_AUTHORIZATION_FAILED) or the cluster for a broker
// (CLUSTER_AUTHORIZATION_FAILED).

import (
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(32, 0, 4, handleDescribeConfigs) }

func handleDescribeConfigs(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var (
			entries []ConfigEntry
			err     error
		)
		switch rt := rr.ResourceType; {
		case rt == kmsg.ConfigResourceTypeTopic && !c.allowedTopic(acl.OpDescribeConfigs, rr.ResourceName):
			err = ErrTopicAuthorization
		case rt == kmsg.ConfigResourceTypeTopic:
			entries, err = c.s.backend.TopicConfigs(rr.ResourceName)
		case rt == kmsg.ConfigResourceTypeBroker && !c.allowedCluster(acl.OpDescribeConfigs):
			err = ErrClusterAuthorization
		case rt == kmsg.ConfigResourceTypeBroker:
			entries, err = c.s.backend.BrokerConfigs(rr.ResourceName)
		default:
			err = fmt.Errorf("%w: resource type %d", ErrInvalidRequest, rr.ResourceType)
		}
		sr.ErrorCode = errorCode(err)
		sr.ErrorMessage = errorMessage(err)
		for _, e := range entries {
			if rr.ConfigNames != nil && !slices.Contains(rr.ConfigNames, e.Name) {
				continue
			}
			cf := kmsg.NewDescribeConfigsResponseResourceConfig()
			cf.Name, cf.Value, cf.ReadOnly, cf.IsDefault, cf.IsSensitive = e.Name, e.Value, e.ReadOnly, e.Default, e.Sensitive
			cf.Source = configSource(e, rr.ResourceType)
			sr.Configs = append(sr.Configs, cf)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}, nil
}

func configSource(e ConfigEntry, rt kmsg.ConfigResourceType) kmsg.ConfigSource {
	switch {
	case e.Source != 0:
		return e.Source
	case e.Default:
		return kmsg.ConfigSourceDefaultConfig
	case rt == kmsg.ConfigResourceTypeTopic:
		return kmsg.ConfigSourceDynamicTopicConfig
	default:
		return kmsg.ConfigSourceStaticBrokerConfig
	}
}
