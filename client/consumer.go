package client

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ConsumerClient reads partition 0 of a topic by offset and keeps a
// committed position per consumer id (a Kafka group id).
type ConsumerClient struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewConsumerClient connects to the brokers in addrs (comma-separated).
func NewConsumerClient(addrs string) (*ConsumerClient, error) {
	cl, err := newClient(addrs)
	if err != nil {
		return nil, err
	}
	return &ConsumerClient{cl: cl, adm: kadm.NewClient(cl)}, nil
}

// FetchRequest asks for the record at Offset (or the first after it, in a
// compacted topic). Id is informational here: positions are committed with
// CommitOffset.
type FetchRequest struct {
	Topic  string
	Offset int64
	Id     string
	// MaxWait bounds the wait for a record not yet written (default 500 ms).
	MaxWait time.Duration
}

// Entry is one record.
type Entry struct {
	Offset int64
	Key    []byte
	Value  []byte
}

// FetchResponse holds the record, or nil Entry when none arrived in time.
type FetchResponse struct {
	Entry         *Entry
	HighWatermark int64
}

// Fetch returns the record at req.Offset from the partition's leader,
// waiting up to MaxWait for it to be written.
func (cc *ConsumerClient) Fetch(ctx context.Context, req *FetchRequest) (*FetchResponse, error) {
	wait := req.MaxWait
	if wait <= 0 {
		wait = 500 * time.Millisecond
	}
	fr := kmsg.NewPtrFetchRequest()
	fr.ReplicaID, fr.MaxWaitMillis, fr.MinBytes, fr.MaxBytes = -1, int32(wait.Milliseconds()), 1, 1<<20
	fr.SessionEpoch = -1
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = req.Topic
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition, fp.FetchOffset, fp.PartitionMaxBytes, fp.CurrentLeaderEpoch, fp.LogStartOffset = 0, req.Offset, 1<<20, -1, -1
	ft.Partitions = []kmsg.FetchRequestTopicPartition{fp}
	fr.Topics = []kmsg.FetchRequestTopic{ft}
	leader, err := cc.leader(ctx, req.Topic)
	if err != nil {
		return nil, err
	}
	resp, err := fr.RequestWith(ctx, cc.cl.Broker(int(leader)))
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, errors.New("client: malformed fetch response")
	}
	rp := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
		return nil, err
	}
	out := &FetchResponse{HighWatermark: rp.HighWatermark}
	part, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: req.Topic, Partition: 0}, &rp, kgo.DefaultDecompressor(), nil)
	if part.Err != nil {
		return nil, part.Err
	}
	for _, fpr := range part.Records {
		if fpr.Offset >= req.Offset {
			out.Entry = &Entry{Offset: fpr.Offset, Key: fpr.Key, Value: fpr.Value}
			break
		}
	}
	return out, nil
}

func (cc *ConsumerClient) leader(ctx context.Context, topic string) (int32, error) {
	md, err := cc.adm.Metadata(ctx, topic)
	if err != nil {
		return 0, err
	}
	t, ok := md.Topics[topic]
	if !ok || t.Err != nil {
		if ok {
			return 0, t.Err
		}
		return 0, kerr.UnknownTopicOrPartition
	}
	p, ok := t.Partitions[0]
	if !ok || p.Leader < 0 {
		return 0, kerr.LeaderNotAvailable
	}
	return p.Leader, nil
}

// CommitOffsetRequest records Id's position: Offset is the next record to
// read.
type CommitOffsetRequest struct {
	Topic  string
	Offset int64
	Id     string
}

// CommitOffset commits the position.
func (cc *ConsumerClient) CommitOffset(ctx context.Context, req *CommitOffsetRequest) error {
	o := kadm.Offsets{}
	o.AddOffset(req.Topic, 0, req.Offset, -1)
	resp, err := cc.adm.CommitOffsets(ctx, req.Id, o)
	if err != nil {
		return err
	}
	return resp.Error()
}

// FetchOffsetRequest asks for Id's committed position.
type FetchOffsetRequest struct {
	Topic string
	Id    string
}

// FetchOffsetResponse is the committed position; Offset is -1 when Id has
// committed nothing for the topic.
type FetchOffsetResponse struct{ Offset int64 }

// FetchOffset returns the committed position.
func (cc *ConsumerClient) FetchOffset(ctx context.Context, req *FetchOffsetRequest) (*FetchOffsetResponse, error) {
	offs, err := cc.adm.FetchOffsets(ctx, req.Id)
	if err != nil {
		return nil, err
	}
	if o, ok := offs.Lookup(req.Topic, 0); ok && o.Err == nil {
		return &FetchOffsetResponse{Offset: o.At}, nil
	}
	return &FetchOffsetResponse{Offset: -1}, nil
}

// Close closes the connections.
func (cc *ConsumerClient) Close() { cc.cl.Close() }
