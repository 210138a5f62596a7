package protocol

// Metadata v0-v12: brokers, controller, and topics with their partitions'
// leaders, epochs, replicas and ISR. Unknown topics are created when the
// request allows it (v4+ says so; v0-v3 always do) and the broker does.
// v10+ may name topics by id.
//
// Only topics the principal may DESCRIBE are listed; one named without it
// gets TOPIC_AUTHORIZATION_FAILED. Auto-creating needs CREATE on the
// cluster or the topic.

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
)

func init() { register(3, 0, 12, handleMetadata) }

func handleMetadata(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	cl := c.s.backend.Cluster(c.s.cfg.Listener)
	for _, b := range cl.Brokers {
		resp.Brokers = append(resp.Brokers, kmsg.MetadataResponseBroker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack})
	}
	cid := cl.ClusterID
	resp.ClusterID = &cid
	resp.ControllerID = cl.ControllerID

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range c.s.backend.Topics() {
			if c.allowedTopic(acl.OpDescribe, t.Name) {
				resp.Topics = append(resp.Topics, metadataTopic(t, cl.NoListener, req.Version))
			}
		}
		return reply{resp: resp}, nil
	}
	autoCreate := req.Version < 4 || req.AllowAutoTopicCreation
	topics := func(ctx context.Context) {
		for _, rt := range req.Topics {
			var (
				t   TopicInfo
				err error
			)
			switch {
			case rt.Topic == nil:
				t, err = topicByID(c.s.backend, rt.TopicID)
				if err == nil && !c.allowedTopic(acl.OpDescribe, t.Name) {
					err = ErrTopicAuthorization
				}
			case !c.allowedTopic(acl.OpDescribe, *rt.Topic):
				err = ErrTopicAuthorization
			default:
				t, err = c.s.backend.Topic(*rt.Topic)
				if errors.Is(err, ErrUnknownTopic) && autoCreate {
					t, err = autoCreateTopic(ctx, c, *rt.Topic)
				}
			}
			if err != nil {
				mt := kmsg.NewMetadataResponseTopic()
				mt.Topic, mt.TopicID = rt.Topic, rt.TopicID
				mt.ErrorCode = errorCode(err)
				if rt.Topic == nil && errors.Is(err, ErrUnknownTopic) {
					mt.ErrorCode = kerr.UnknownTopicID.Code
				}
				resp.Topics = append(resp.Topics, mt)
				continue
			}
			resp.Topics = append(resp.Topics, metadataTopic(t, cl.NoListener, req.Version))
		}
	}
	if autoCreate {
		for _, rt := range req.Topics {
			if rt.Topic == nil {
				continue
			}
			if _, err := c.s.backend.Topic(*rt.Topic); errors.Is(err, ErrUnknownTopic) {
				// Creating a topic waits for the controller: answered off
				// the connection's reader, and cut short when the
				// connection or the server closes.
				return reply{later: func(ctx context.Context) kmsg.Response { topics(ctx); return resp }}, nil
			}
		}
	}
	topics(c.ctx)
	return reply{resp: resp}, nil
}

// autoCreateTimeout bounds how long a request waits for a topic it
// auto-creates.
const autoCreateTimeout = 10 * time.Second

// autoCreateTopic creates a topic on first use, within the connection's
// life and autoCreateTimeout, when the principal may CREATE it (on the
// cluster or the topic); ErrTopicAuthorization otherwise.
func autoCreateTopic(ctx context.Context, c *conn, topic string) (TopicInfo, error) {
	if !c.allowedCluster(acl.OpCreate) && !c.allowedTopic(acl.OpCreate, topic) {
		return TopicInfo{}, ErrTopicAuthorization
	}
	ctx, cancel := context.WithTimeout(ctx, autoCreateTimeout)
	defer cancel()
	return c.s.backend.AutoCreate(ctx, topic)
}

func topicByID(b Backend, id [16]byte) (TopicInfo, error) {
	for _, t := range b.Topics() {
		if t.ID == id {
			return t, nil
		}
	}
	return TopicInfo{}, ErrUnknownTopic
}

// metadataTopic describes t; a partition whose leader has no listener of
// the request's name gets no leader and LISTENER_NOT_FOUND (from v6;
// LEADER_NOT_AVAILABLE before), as Kafka answers.
func metadataTopic(t TopicInfo, noListener map[int32]bool, version int16) kmsg.MetadataResponseTopic {
	mt := kmsg.NewMetadataResponseTopic()
	name := t.Name
	mt.Topic = &name
	mt.TopicID = t.ID
	mt.IsInternal = t.Internal
	for _, p := range t.Partitions {
		mp := kmsg.NewMetadataResponseTopicPartition()
		mp.Partition = p.ID
		mp.Leader = p.Leader
		mp.LeaderEpoch = p.LeaderEpoch
		if noListener[p.Leader] {
			mp.Leader, mp.ErrorCode = -1, kerr.LeaderNotAvailable.Code
			if version >= 6 {
				mp.ErrorCode = kerr.ListenerNotFound.Code
			}
		}
		mp.Replicas = p.Replicas
		mp.ISR = p.ISR
		mt.Partitions = append(mt.Partitions, mp)
	}
	return mt
}
