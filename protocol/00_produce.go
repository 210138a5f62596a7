package protocol

// Produce v3-v9 (v3 is the first with v2 record batches, which librdkafka
// needs). Each partition's records must be exactly one batch. Appends happen
// on the connection's reader goroutine, in request order, so pipelined
// idempotent batches keep their sequence order; waiting for fsync (acks 1 and
// -1) happens on the reply's own goroutine. acks=0 gets no response at all.
// Each topic needs WRITE (TOPIC_AUTHORIZATION_FAILED).

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/acl"
	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage/batch"
)

func init() { register(0, 3, 9, handleProduce) }

type producePending struct {
	topic, part int
	app         partition.Appended
	p           *partition.Partition
}

func handleProduce(c *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	acks := req.Acks
	var reqErr error
	switch {
	case acks != 0 && acks != 1 && acks != -1:
		reqErr = ErrInvalidRequiredAcks
	case req.TransactionID != nil && !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, *req.TransactionID):
		reqErr = kerr.TransactionalIDAuthorizationFailed
	}
	var pending []producePending
	for ti, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		var topicErr error
		if reqErr == nil && !c.allowedTopic(acl.OpWrite, rt.Topic) {
			topicErr = ErrTopicAuthorization
		}
		for pi, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			err := cmp.Or(reqErr, topicErr)
			var p *partition.Partition
			h, herr := batch.ParseHeader(rp.Records) // Append validates it whole
			if err == nil {
				if herr == nil && h.Transactional() != (req.TransactionID != nil) {
					// Transactional batches come with their transactional
					// id, and only they do: a transaction no coordinator
					// knows would never end (and hold read_committed
					// consumers back).
					err = kerr.InvalidTxnState
				}
			}
			if err == nil {
				p, err = partitionFor(c, rt.Topic, rp.Partition, true)
			}
			if err == nil {
				err = p.CheckLeader(-1)
			}
			if err == nil && acks == -1 {
				err = p.CheckMinISR()
			}
			var app partition.Appended
			if err == nil {
				app, err = p.Append(rp.Records)
			}
			if err != nil {
				sp.ErrorCode = errorCode(err)
				if req.Version >= 8 {
					sp.ErrorMessage = errorMessage(err)
				}
			} else {
				c.s.cfg.Metrics.Produced(rt.Topic, len(rp.Records), int(h.RecordCount))
				pending = append(pending, producePending{topic: ti, part: pi, app: app, p: p})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if acks == 0 {
		for _, pp := range pending {
			_, _ = pp.p.WaitAck(context.Background(), pp.app, 0)
		}
		return reply{none: true}, nil
	}
	if len(pending) == 0 {
		return reply{resp: resp}, nil
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	return reply{later: func(ctx context.Context) kmsg.Response {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		for _, pp := range pending {
			sp := &resp.Topics[pp.topic].Partitions[pp.part]
			res, err := pp.p.WaitAck(ctx, pp.app, acks)
			if err != nil {
				sp.ErrorCode = errorCode(err)
				continue
			}
			sp.BaseOffset, sp.LogStartOffset = res.BaseOffset, res.LogStartOffset
		}
		return resp
	}}, nil
}

// partitionFor finds a partition, creating its topic on first use when
// allowed.
func partitionFor(c *conn, topic string, id int32, autoCreate bool) (*partition.Partition, error) {
	p, err := c.s.backend.Partition(topic, id)
	if errors.Is(err, ErrUnknownTopic) && autoCreate {
		if _, err = autoCreateTopic(c.ctx, c, topic); err == nil {
			p, err = c.s.backend.Partition(topic, id)
		}
	}
	return p, err
}
