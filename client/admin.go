package client

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// RemoteClient administers topics.
type RemoteClient struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewRemoteClient connects to the brokers in addrs (comma-separated).
func NewRemoteClient(addrs string) (*RemoteClient, error) {
	cl, err := newClient(addrs)
	if err != nil {
		return nil, err
	}
	return &RemoteClient{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// CreateTopicRequest describes a topic. ReplicaCount 0 means the broker's
// default (min(3, brokers)); Partitions 0 means one.
type CreateTopicRequest struct {
	Topic        string
	ReplicaCount int16
	Partitions   int32
	Configs      map[string]string
}

// CreateTopicResponse names the topic created.
type CreateTopicResponse struct{ Topic string }

// CreateTopic creates a topic.
func (rc *RemoteClient) CreateTopic(ctx context.Context, req *CreateTopicRequest) (*CreateTopicResponse, error) {
	rf, parts := req.ReplicaCount, req.Partitions
	if rf == 0 {
		rf = -1
	}
	if parts == 0 {
		parts = 1
	}
	var configs map[string]*string
	for k, v := range req.Configs {
		if configs == nil {
			configs = map[string]*string{}
		}
		configs[k] = &v
	}
	res, err := rc.adm.CreateTopic(ctx, parts, rf, configs, req.Topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return nil, fmt.Errorf("client: create topic %q: %w", req.Topic, err)
	}
	return &CreateTopicResponse{Topic: req.Topic}, nil
}

// ListTopicsRequest lists every topic (internal ones too when asked).
type ListTopicsRequest struct{ Internal bool }

// TopicInfo is one topic as ListTopics reports it: partition 0's leader,
// replicas and in-sync replicas as node ids ("node-1").
type TopicInfo struct {
	Name         string
	Partitions   int
	LeaderNodeID string
	Replicas     []string
	ISR          []string
}

// ListTopicsResponse holds the topics, sorted by name.
type ListTopicsResponse struct{ Topics []TopicInfo }

// ListTopics lists the topics.
func (rc *RemoteClient) ListTopics(ctx context.Context, req *ListTopicsRequest) (*ListTopicsResponse, error) {
	list := rc.adm.ListTopics
	if req != nil && req.Internal {
		list = rc.adm.ListTopicsWithInternal
	}
	topics, err := list(ctx)
	if err != nil {
		return nil, err
	}
	out := &ListTopicsResponse{}
	for _, name := range topics.Names() {
		t := topics[name]
		ti := TopicInfo{Name: name, Partitions: len(t.Partitions), LeaderNodeID: "none"}
		if p, ok := t.Partitions[0]; ok {
			if p.Leader >= 0 {
				ti.LeaderNodeID = nodeName(p.Leader)
			}
			for _, r := range p.Replicas {
				ti.Replicas = append(ti.Replicas, nodeName(r))
			}
			for _, r := range p.ISR {
				ti.ISR = append(ti.ISR, nodeName(r))
			}
		}
		out.Topics = append(out.Topics, ti)
	}
	return out, nil
}

func nodeName(id int32) string { return fmt.Sprintf("node-%d", id) }

// DeleteTopicRequest names the topic to delete.
type DeleteTopicRequest struct{ Topic string }

// DeleteTopicResponse names the topic deleted.
type DeleteTopicResponse struct{ Topic string }

// DeleteTopic deletes a topic and its data.
func (rc *RemoteClient) DeleteTopic(ctx context.Context, req *DeleteTopicRequest) (*DeleteTopicResponse, error) {
	res, err := rc.adm.DeleteTopic(ctx, req.Topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return nil, fmt.Errorf("client: delete topic %q: %w", req.Topic, err)
	}
	return &DeleteTopicResponse{Topic: req.Topic}, nil
}

// Close closes the connections.
func (rc *RemoteClient) Close() { rc.cl.Close() }
