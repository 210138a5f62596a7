package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/cluster"
	"github.com/mlog/mlog/internal/brokerclient"
	"github.com/mlog/mlog/protocol"
)

// controllerClient asks the controller for metadata changes: directly when
// this broker is the controller, otherwise over the Kafka protocol to the
// broker that is, waiting out elections within the caller's context. Every
// method returns Go errors — protocol's sentinels, whichever broker the
// failure happened on — never raw Kafka codes, and checks a response's
// shape before reading it.
type controllerClient struct{ b *Broker }

// errNoController means no controller is known yet (an election is on).
var errNoController = errors.New("broker: no controller elected yet")

// errMalformed means the controller's response did not answer the request.
var errMalformed = errors.New("broker: malformed response from the controller")

// forwardTimeout bounds a forwarded admin request when the caller set no
// deadline.
const forwardTimeout = 15 * time.Second

func (c controllerClient) local() bool { return c.b.cl.node.IsLeader() }

// CreateTopic creates a topic with rf replicas and returns its partition
// count (the only thing known of a validate-only creation).
func (c controllerClient) CreateTopic(ctx context.Context, spec protocol.TopicSpec, rf int, validateOnly bool) (int32, error) {
	if c.local() {
		t, err := c.b.cl.ctrl.CreateTopic(ctx, spec.Name, cluster.TopicID(newTopicID()), int(spec.Partitions), rf, spec.Configs, validateOnly)
		if err != nil {
			return 0, protocol.Sentinel(err)
		}
		return int32(len(t.Partitions)), nil
	}
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.ValidateOnly, req.TimeoutMillis = 7, validateOnly, 10_000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = spec.Name, spec.Partitions, int16(rf)
	for k, v := range spec.Configs {
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: k, Value: &v})
	}
	req.Topics = []kmsg.CreateTopicsRequestTopic{rt}
	resp, err := forward[*kmsg.CreateTopicsResponse](ctx, c, req)
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 || resp.Topics[0].Topic != spec.Name {
		return 0, fmt.Errorf("%w: CreateTopics answered %d topics", errMalformed, len(resp.Topics))
	}
	r := resp.Topics[0]
	return r.NumPartitions, protocol.ErrorForCode(r.ErrorCode)
}

// DeleteTopic deletes a topic.
func (c controllerClient) DeleteTopic(ctx context.Context, name string) error {
	if c.local() {
		return protocol.Sentinel(c.b.cl.ctrl.DeleteTopic(ctx, name))
	}
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version, req.TimeoutMillis, req.TopicNames = 5, 10_000, []string{name}
	resp, err := forward[*kmsg.DeleteTopicsResponse](ctx, c, req)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("%w: DeleteTopics answered %d topics", errMalformed, len(resp.Topics))
	}
	return protocol.ErrorForCode(resp.Topics[0].ErrorCode)
}

// CreatePartitions grows a topic to count partitions.
func (c controllerClient) CreatePartitions(ctx context.Context, name string, count int32, validateOnly bool) error {
	if c.local() {
		return protocol.Sentinel(c.b.cl.ctrl.CreatePartitions(ctx, name, int(count), validateOnly))
	}
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.TimeoutMillis, req.ValidateOnly = 3, 10_000, validateOnly
	req.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: name, Count: count}}
	resp, err := forward[*kmsg.CreatePartitionsResponse](ctx, c, req)
	if err != nil {
		return err
	}
	if len(resp.Topics) != 1 {
		return fmt.Errorf("%w: CreatePartitions answered %d topics", errMalformed, len(resp.Topics))
	}
	return protocol.ErrorForCode(resp.Topics[0].ErrorCode)
}

// AlterConfigs changes one resource's configs on the controller.
func (c controllerClient) AlterConfigs(ctx context.Context, a protocol.ConfigAlteration) error {
	if c.local() {
		return c.b.alterConfigsLocal(ctx, a)
	}
	var (
		resp kmsg.Response
		err  error
	)
	if a.Incremental {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		req.Version, req.ValidateOnly = 1, a.ValidateOnly
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = a.Type, a.Name
		for _, op := range a.Ops {
			rr.Configs = append(rr.Configs, kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: op.Name, Op: op.Op, Value: op.Value})
		}
		req.Resources = []kmsg.IncrementalAlterConfigsRequestResource{rr}
		resp, err = forward[*kmsg.IncrementalAlterConfigsResponse](ctx, c, req)
	} else {
		req := kmsg.NewPtrAlterConfigsRequest()
		req.Version, req.ValidateOnly = 2, a.ValidateOnly
		rr := kmsg.NewAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = a.Type, a.Name
		for _, op := range a.Ops {
			rr.Configs = append(rr.Configs, kmsg.AlterConfigsRequestResourceConfig{Name: op.Name, Value: op.Value})
		}
		req.Resources = []kmsg.AlterConfigsRequestResource{rr}
		resp, err = forward[*kmsg.AlterConfigsResponse](ctx, c, req)
	}
	if err != nil {
		return err
	}
	var code int16
	var msg *string
	switch r := resp.(type) {
	case *kmsg.IncrementalAlterConfigsResponse:
		if len(r.Resources) != 1 {
			return fmt.Errorf("%w: IncrementalAlterConfigs answered %d resources", errMalformed, len(r.Resources))
		}
		code, msg = r.Resources[0].ErrorCode, r.Resources[0].ErrorMessage
	case *kmsg.AlterConfigsResponse:
		if len(r.Resources) != 1 {
			return fmt.Errorf("%w: AlterConfigs answered %d resources", errMalformed, len(r.Resources))
		}
		code, msg = r.Resources[0].ErrorCode, r.Resources[0].ErrorMessage
	}
	if err := protocol.ErrorForCode(code); err != nil && msg != nil {
		return fmt.Errorf("%w: %s", err, *msg)
	} else if err != nil {
		return err
	}
	return nil
}

// AlterPartition applies a partition leader's ISR change.
func (c controllerClient) AlterPartition(ctx context.Context, ch protocol.ISRChange) error {
	if c.local() {
		_, err := c.b.cl.ctrl.AlterISR(ctx, cluster.AlterISR{Topic: ch.Topic, Partition: ch.Partition, Leader: ch.Leader,
			LeaderEpoch: ch.LeaderEpoch, PartitionEpoch: ch.PartitionEpoch, ISR: ch.ISR})
		return protocol.Sentinel(err)
	}
	req := kmsg.NewPtrAlterPartitionRequest()
	req.Version, req.BrokerID = 1, c.b.nodeID
	rp := kmsg.NewAlterPartitionRequestTopicPartition()
	rp.Partition, rp.LeaderEpoch, rp.PartitionEpoch, rp.NewISR = ch.Partition, ch.LeaderEpoch, ch.PartitionEpoch, ch.ISR
	req.Topics = []kmsg.AlterPartitionRequestTopic{{Topic: ch.Topic, Partitions: []kmsg.AlterPartitionRequestTopicPartition{rp}}}
	resp, err := forward[*kmsg.AlterPartitionResponse](ctx, c, req)
	if err != nil {
		return err
	}
	if err := protocol.ErrorForCode(resp.ErrorCode); err != nil {
		return err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return fmt.Errorf("%w: AlterPartition answered %d topics", errMalformed, len(resp.Topics))
	}
	return protocol.ErrorForCode(resp.Topics[0].Partitions[0].ErrorCode)
}

// AllocateProducerIDs reserves a block of producer ids.
func (c controllerClient) AllocateProducerIDs(ctx context.Context) (first int64, n int32, err error) {
	if c.local() {
		first, err := c.b.cl.ctrl.AllocateProducerIDs(ctx, producerIDBlockSize)
		return first, producerIDBlockSize, protocol.Sentinel(err)
	}
	req := kmsg.NewPtrAllocateProducerIDsRequest()
	req.BrokerID = c.b.nodeID
	resp, err := forward[*kmsg.AllocateProducerIDsResponse](ctx, c, req)
	if err != nil {
		return 0, 0, err
	}
	if err := protocol.ErrorForCode(resp.ErrorCode); err != nil {
		return 0, 0, err
	}
	if resp.ProducerIDLen < 1 || resp.ProducerIDStart < 0 {
		return 0, 0, fmt.Errorf("%w: producer id block %d+%d", errMalformed, resp.ProducerIDStart, resp.ProducerIDLen)
	}
	return resp.ProducerIDStart, resp.ProducerIDLen, nil
}

// ControlledShutdown moves leadership away from this broker before it
// stops; on the controller itself, Raft leadership moves too.
func (c controllerClient) ControlledShutdown(ctx context.Context) error {
	b := c.b
	if c.local() {
		if err := b.cl.ctrl.ControlledShutdown(ctx, b.nodeID); err != nil {
			return protocol.Sentinel(err)
		}
		if servers, err := b.cl.node.Servers(); err == nil && len(servers) > 1 {
			return b.cl.node.TransferLeadership()
		}
		return nil
	}
	req := kmsg.NewPtrControlledShutdownRequest()
	req.Version, req.BrokerID = 1, b.nodeID
	resp, err := forward[*kmsg.ControlledShutdownResponse](ctx, c, req)
	if err != nil {
		return err
	}
	return protocol.ErrorForCode(resp.ErrorCode)
}

// forward sends req to the controller and returns its response, retrying
// while the controller moves, within ctx (forwardTimeout when ctx has no
// deadline).
func forward[R kmsg.Response](ctx context.Context, c controllerClient, req kmsg.Request) (R, error) {
	var zero R
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, forwardTimeout)
		defer cancel()
	}
	backoff := 20 * time.Millisecond
	for {
		got, err := c.send(ctx, req)
		if err == nil {
			r, ok := got.(R)
			if !ok {
				return zero, fmt.Errorf("%w: %T", errMalformed, got)
			}
			return r, nil
		}
		if !errors.Is(err, errNoController) {
			c.b.log.Debug("request to controller failed; retrying", "api", kmsg.NameForKey(req.Key()), "err", err)
		}
		select {
		case <-ctx.Done():
			return zero, fmt.Errorf("%w: %s: %w", protocol.ErrNotController, kmsg.NameForKey(req.Key()), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// send sends req once to the broker the Raft leader names.
func (c controllerClient) send(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	b := c.b
	name := b.cl.node.Leader()
	if name == "" {
		return nil, errNoController
	}
	var addr string
	for _, br := range b.cl.fsm.State().Brokers {
		if br.Name == name {
			addr = br.KafkaAddr
		}
	}
	if addr == "" {
		return nil, errNoController
	}
	cl := b.peerClient(addr)
	if cl == nil {
		return nil, brokerclient.ErrClientClosed
	}
	return cl.Request(ctx, req)
}

// peerClient is this broker's client to another broker's inter-broker
// listener (the controller, a partition leader), made on first use; nil
// once the broker is closing.
func (b *Broker) peerClient(addr string) *brokerclient.Client {
	b.cl.mu.Lock()
	defer b.cl.mu.Unlock()
	cl := b.cl.clients[addr]
	if cl == nil && !b.cl.closing {
		cl = brokerclient.NewClient(addr, "mlog-broker-"+b.cfg.NodeID, b.peerSecurity())
		b.cl.clients[addr] = cl
	}
	return cl
}
