package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Acks is how many replicas must have a record before Produce returns.
type Acks int

const (
	AckNone   Acks = 0 // fire and forget: no offset comes back
	AckLeader Acks = 1 // the leader has it
	AckAll    Acks = 2 // every in-sync replica has it
)

// ErrNoAck means Produce was asked for AckNone, so no offset is known.
var ErrNoAck = errors.New("client: acks=0: the broker does not answer")

func newClient(addrs string, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := strings.Split(addrs, ",")
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(250 * time.Millisecond)}, opts...)...)
}

// ProducerClient writes records to partition 0 of a topic.
type ProducerClient struct {
	addrs string
	mu    sync.Mutex
	by    map[Acks]*kgo.Client // one kgo client per ack mode, made on first use
}

// NewProducerClient connects to the brokers in addrs (comma-separated).
func NewProducerClient(addrs string) (*ProducerClient, error) {
	pc := &ProducerClient{by: map[Acks]*kgo.Client{}, addrs: addrs}
	if _, err := pc.client(AckLeader); err != nil {
		return nil, err
	}
	return pc, nil
}

// client returns the kgo client for an ack mode (kgo fixes acks per client).
func (pc *ProducerClient) client(acks Acks) (*kgo.Client, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if cl := pc.by[acks]; cl != nil {
		return cl, nil
	}
	opts := []kgo.Opt{kgo.AllowAutoTopicCreation(), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0)}
	switch acks {
	case AckNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	case AckLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	case AckAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	default:
		return nil, fmt.Errorf("client: acks %d: want 0, 1 or 2", acks)
	}
	cl, err := newClient(pc.addrs, opts...)
	if err != nil {
		return nil, err
	}
	pc.by[acks] = cl
	return cl, nil
}

// ProduceRequest is one record.
type ProduceRequest struct {
	Topic string
	Key   []byte
	Value []byte
	Acks  Acks
}

// ProduceResponse says where the record went.
type ProduceResponse struct{ Offset int64 }

// Produce writes one record and returns its offset once acknowledged.
func (pc *ProducerClient) Produce(ctx context.Context, req *ProduceRequest) (*ProduceResponse, error) {
	resp, err := pc.ProduceBatch(ctx, &ProduceBatchRequest{Topic: req.Topic, Keys: [][]byte{req.Key}, Values: [][]byte{req.Value}, Acks: req.Acks})
	if err != nil {
		return nil, err
	}
	return &ProduceResponse{Offset: resp.BaseOffset}, nil
}

// ProduceBatchRequest is several records, written in order.
type ProduceBatchRequest struct {
	Topic  string
	Keys   [][]byte // optional; Keys[i] goes with Values[i]
	Values [][]byte
	Acks   Acks
}

// ProduceBatchResponse gives the first and last offsets written.
type ProduceBatchResponse struct{ BaseOffset, LastOffset int64 }

// ProduceBatch writes the values in order and returns their offsets.
func (pc *ProducerClient) ProduceBatch(ctx context.Context, req *ProduceBatchRequest) (*ProduceBatchResponse, error) {
	if len(req.Values) == 0 {
		return nil, errors.New("client: no values to produce")
	}
	cl, err := pc.client(req.Acks)
	if err != nil {
		return nil, err
	}
	recs := make([]*kgo.Record, len(req.Values))
	for i, v := range req.Values {
		recs[i] = &kgo.Record{Topic: req.Topic, Value: v}
		if i < len(req.Keys) {
			recs[i].Key = req.Keys[i]
		}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return nil, err
	}
	if req.Acks == AckNone {
		return nil, ErrNoAck
	}
	return &ProduceBatchResponse{BaseOffset: recs[0].Offset, LastOffset: recs[len(recs)-1].Offset}, nil
}

// Close closes the connections.
func (pc *ProducerClient) Close() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	for _, cl := range pc.by {
		cl.Close()
	}
}
