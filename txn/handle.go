package txn

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/group"
)

// Handle answers a transactional request: InitProducerID with a
// transactional id, AddPartitionsToTxn, AddOffsetsToTxn or EndTxn.
// partitions is how many partitions __transaction_state has.
func (c *Coordinator) Handle(ctx context.Context, partitions int, req kmsg.Request) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.InitProducerIDRequest:
		return c.initProducerID(ctx, partitions, r)
	case *kmsg.AddPartitionsToTxnRequest:
		return c.addPartitions(ctx, partitions, r)
	case *kmsg.AddOffsetsToTxnRequest:
		return c.addOffsets(ctx, partitions, r)
	case *kmsg.EndTxnRequest:
		return c.endTxn(ctx, partitions, r)
	}
	return nil
}

// fenced is the code for a request from an older producer epoch:
// PRODUCER_FENCED for clients that know it (KIP-588), else
// INVALID_PRODUCER_EPOCH.
func fenced(knowsFenced bool) int16 {
	if knowsFenced {
		return kerr.ProducerFenced.Code
	}
	return kerr.InvalidProducerEpoch.Code
}

// checkProducer is what every request after InitProducerId checks: the
// transactional id is known, maps to the producer id, in its epoch.
func checkProducer(cur *Metadata, pid int64, epoch int16, knowsFenced bool) int16 {
	switch {
	case cur == nil || cur.ProducerID != pid:
		return kerr.InvalidProducerIDMapping.Code
	case epoch < cur.ProducerEpoch:
		return fenced(knowsFenced)
	case epoch != cur.ProducerEpoch:
		return kerr.InvalidProducerEpoch.Code
	}
	return 0
}

func preparing(m *Metadata) bool {
	return m.State == kmsg.TransactionStatePrepareCommit || m.State == kmsg.TransactionStatePrepareAbort
}

func (c *Coordinator) initProducerID(ctx context.Context, partitions int, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	id := *req.TransactionalID
	if req.TransactionTimeoutMillis <= 0 || time.Duration(req.TransactionTimeoutMillis)*time.Millisecond > c.cfg.MaxTimeout {
		resp.ErrorCode = kerr.InvalidTransactionTimeout.Code
		return resp
	}
	s, code := c.shardFor(id, partitions)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	// A new transactional id, or one whose epoch is spent, needs a new
	// producer id: asked for before deciding, outside the lock.
	c.mu.Lock()
	e := s.txns[id]
	needPID := e == nil || (e.meta != nil && e.meta.ProducerEpoch >= math.MaxInt16-1)
	c.mu.Unlock()
	newPID := int64(-1)
	if needPID {
		pid, err := c.cfg.NewProducerID(ctx)
		if err != nil {
			resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
			return resp
		}
		newPID = pid
	}
	knowsFenced := req.Version >= 4
	aborting := false
	next, code := c.change(ctx, s, id, func(cur *Metadata) (*Metadata, int16, error) {
		now := time.Now().UnixMilli()
		if cur == nil {
			if newPID < 0 {
				return nil, kerr.ConcurrentTransactions.Code, nil
			}
			return &Metadata{ID: id, ProducerID: newPID, TimeoutMs: req.TransactionTimeoutMillis, State: kmsg.TransactionStateEmpty, LastUpdateMs: now}, 0, nil
		}
		if req.ProducerID >= 0 && req.ProducerEpoch >= 0 && (req.ProducerID != cur.ProducerID || req.ProducerEpoch != cur.ProducerEpoch) {
			// KIP-360: a producer that asks to bump an epoch that is
			// no longer current has been fenced.
			return nil, fenced(knowsFenced), nil
		}
		switch cur.State {
		case kmsg.TransactionStatePrepareCommit, kmsg.TransactionStatePrepareAbort:
			return nil, kerr.ConcurrentTransactions.Code, nil
		case kmsg.TransactionStateOngoing:
			// An earlier instance left a transaction open: abort it and
			// fence that instance; the client retries and gets the
			// epoch after.
			aborting = true
			return fenceAndAbort(cur), 0, nil
		}
		next := cur.clone()
		if next.ProducerEpoch >= math.MaxInt16-1 {
			if newPID < 0 {
				return nil, kerr.ConcurrentTransactions.Code, nil
			}
			next.ProducerID, next.ProducerEpoch = newPID, 0
		} else {
			next.ProducerEpoch++
		}
		next.TimeoutMs, next.State, next.Partitions, next.LastUpdateMs, next.StartMs = req.TransactionTimeoutMillis, kmsg.TransactionStateEmpty, nil, now, 0
		return next, 0, nil
	})
	switch {
	case code != 0:
		resp.ErrorCode = code
	case aborting:
		resp.ErrorCode = kerr.ConcurrentTransactions.Code
	default:
		resp.ProducerID, resp.ProducerEpoch = next.ProducerID, next.ProducerEpoch
	}
	return resp
}

func (c *Coordinator) addPartitions(ctx context.Context, partitions int, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var tps []TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, TopicPartition{t.Topic, p})
		}
	}
	codes := map[TopicPartition]int16{}
	code := c.add(ctx, partitions, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Version >= 2, tps, codes)
	for _, t := range req.Topics {
		rt := kmsg.NewAddPartitionsToTxnResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			rp.Partition = p
			rp.ErrorCode = code
			if c, ok := codes[TopicPartition{t.Topic, p}]; ok {
				rp.ErrorCode = c
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (c *Coordinator) addOffsets(ctx context.Context, partitions int, req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	tp := TopicPartition{group.OffsetsTopic, group.PartitionFor(req.Group, c.cfg.OffsetsPartitions())}
	codes := map[TopicPartition]int16{}
	resp.ErrorCode = c.add(ctx, partitions, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Version >= 2, []TopicPartition{tp}, codes)
	if code, ok := codes[tp]; ok {
		resp.ErrorCode = code // UNKNOWN_TOPIC_OR_PARTITION: retriable
	}
	return resp
}

// add puts partitions into the producer's transaction, starting one if
// none is open. A partition that does not exist is refused
// (UNKNOWN_TOPIC_OR_PARTITION in codes) and nothing is added
// (OPERATION_NOT_ATTEMPTED for the rest).
func (c *Coordinator) add(ctx context.Context, partitions int, id string, pid int64, epoch int16, knowsFenced bool, tps []TopicPartition, codes map[TopicPartition]int16) int16 {
	missing := false
	for _, tp := range tps {
		if !c.cfg.PartitionExists(tp.Topic, tp.Partition) {
			codes[tp] = kerr.UnknownTopicOrPartition.Code
			missing = true
		}
	}
	if missing {
		return kerr.OperationNotAttempted.Code
	}
	s, code := c.shardFor(id, partitions)
	if code != 0 {
		return code
	}
	_, code = c.change(ctx, s, id, func(cur *Metadata) (*Metadata, int16, error) {
		if code := checkProducer(cur, pid, epoch, knowsFenced); code != 0 {
			return nil, code, nil
		}
		if preparing(cur) {
			return nil, kerr.ConcurrentTransactions.Code, nil
		}
		next := cur.clone()
		if cur.State != kmsg.TransactionStateOngoing {
			next.State, next.Partitions, next.StartMs = kmsg.TransactionStateOngoing, nil, time.Now().UnixMilli()
		}
		added := false
		for _, tp := range tps {
			if !next.has(tp) {
				next.add(tp)
				added = true
			}
		}
		if !added && cur.State == kmsg.TransactionStateOngoing {
			return nil, 0, errSame
		}
		next.LastUpdateMs = time.Now().UnixMilli()
		return next, 0, nil
	})
	return code
}

func (c *Coordinator) endTxn(ctx context.Context, partitions int, req *kmsg.EndTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	s, code := c.shardFor(req.TransactionalID, partitions)
	if code != 0 {
		resp.ErrorCode = code
		return resp
	}
	_, resp.ErrorCode = c.change(ctx, s, req.TransactionalID, func(cur *Metadata) (*Metadata, int16, error) {
		if code := checkProducer(cur, req.ProducerID, req.ProducerEpoch, req.Version >= 2); code != 0 {
			return nil, code, nil
		}
		commit := req.Commit
		switch cur.State {
		case kmsg.TransactionStateOngoing:
			next := cur.clone()
			next.State = kmsg.TransactionStatePrepareAbort
			if commit {
				next.State = kmsg.TransactionStatePrepareCommit
			}
			next.LastUpdateMs = time.Now().UnixMilli()
			return next, 0, nil
		case kmsg.TransactionStateCompleteCommit:
			if commit { // a retry of an EndTxn that was answered
				return nil, 0, errSame
			}
		case kmsg.TransactionStateCompleteAbort:
			if !commit {
				return nil, 0, errSame
			}
		case kmsg.TransactionStatePrepareCommit:
			if commit {
				return nil, kerr.ConcurrentTransactions.Code, nil
			}
		case kmsg.TransactionStatePrepareAbort:
			if !commit {
				return nil, kerr.ConcurrentTransactions.Code, nil
			}
		}
		return nil, kerr.InvalidTxnState.Code, nil
	})
	return resp
}
