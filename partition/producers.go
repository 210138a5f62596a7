package partition

import (
	"errors"
	"fmt"
	"math"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
)

var (
	// ErrOutOfOrderSequence means a batch's sequence does not follow the
	// producer's last one (Kafka OUT_OF_ORDER_SEQUENCE_NUMBER).
	ErrOutOfOrderSequence = errors.New("partition: out of order sequence number")
	// ErrInvalidProducerEpoch means a producer with an older epoch than one
	// already seen wrote (Kafka INVALID_PRODUCER_EPOCH).
	ErrInvalidProducerEpoch = errors.New("partition: invalid producer epoch")
	// ErrCoordinatorFenced means a transaction marker from an older
	// coordinator epoch than one already seen (Kafka
	// TRANSACTION_COORDINATOR_FENCED).
	ErrCoordinatorFenced = errors.New("partition: transaction coordinator fenced")
)

// keptBatches is how many batches per producer are remembered to answer a
// retried one with its original offsets, as Kafka does.
const keptBatches = 5

type producerBatch struct {
	firstSeq, lastSeq int32
	res               storage.AppendResult
}

type producerState struct {
	epoch   int16
	batches []producerBatch // oldest first, at most keptBatches
	// coordEpoch is the coordinator epoch of the last marker this leader
	// wrote for the producer: a marker from an older coordinator is
	// refused (-1: none seen here).
	coordEpoch int32
}

func (ps *producerState) remember(b producerBatch) {
	if len(ps.batches) == keptBatches {
		ps.batches = append(ps.batches[:0], ps.batches[1:]...)
	}
	ps.batches = append(ps.batches, b)
}

// lastSeq returns the sequence that follows seq, wrapping as Kafka's do.
func nextSeq(seq int32) int32 {
	if seq == math.MaxInt32 {
		return 0
	}
	return seq + 1
}

func lastSeqOf(h batch.Header) int32 {
	last := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if last > math.MaxInt32 {
		last -= math.MaxInt32 + 1
	}
	return int32(last)
}

// check decides what to do with an idempotent batch: dup != nil means it is a
// retry of a batch already in the log.
func (ps *producerState) check(h batch.Header) (dup *producerBatch, err error) {
	if ps == nil {
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: first batch of producer %d has sequence %d", ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence)
		}
		return nil, nil
	}
	switch {
	case h.ProducerEpoch < ps.epoch:
		return nil, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, ps.epoch)
	case h.ProducerEpoch > ps.epoch:
		if h.BaseSequence != 0 {
			return nil, fmt.Errorf("%w: new epoch %d of producer %d starts at sequence %d", ErrOutOfOrderSequence, h.ProducerEpoch, h.ProducerID, h.BaseSequence)
		}
		return nil, nil
	}
	last := lastSeqOf(h)
	for i := range ps.batches {
		if b := &ps.batches[i]; b.firstSeq == h.BaseSequence && b.lastSeq == last {
			return b, nil
		}
	}
	if n := len(ps.batches); n > 0 {
		if want := nextSeq(ps.batches[n-1].lastSeq); h.BaseSequence != want {
			return nil, fmt.Errorf("%w: producer %d sent %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence, want)
		}
	}
	return nil, nil
}

// record notes an appended idempotent batch.
func (p *Partition) record(h batch.Header, res storage.AppendResult) {
	ps := p.producers[h.ProducerID]
	if ps == nil || h.ProducerEpoch > ps.epoch {
		ps = &producerState{epoch: h.ProducerEpoch, coordEpoch: -1}
		p.producers[h.ProducerID] = ps
	}
	ps.remember(producerBatch{firstSeq: h.BaseSequence, lastSeq: lastSeqOf(h), res: res})
}

// rebuildProducersLocked replays the log's batch headers into producer
// and transaction state. Caller holds mu (or owns p alone, in Open).
func (p *Partition) rebuildProducersLocked() error {
	p.producers = map[int64]*producerState{}
	err := p.log.ScanHeaders(p.log.LogStartOffset(), func(h batch.Header) error {
		switch {
		case h.Idempotent() && !h.Control():
			p.record(h, p.log.ResultFor(h))
		case h.Control() && h.ProducerID >= 0:
			p.raiseEpoch(h.ProducerID, h.ProducerEpoch)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return p.rebuildTxnsLocked()
}

// raiseEpoch notes a producer epoch seen in a marker: a coordinator that
// aborted a transaction with the epoch bumped (a timeout, a fencing
// InitProducerId) fences the producer's older batches on every replica
// from then on, not only on the leader that wrote the marker.
func (p *Partition) raiseEpoch(producerID int64, epoch int16) {
	if ps := p.producers[producerID]; ps == nil || epoch > ps.epoch {
		p.producers[producerID] = &producerState{epoch: epoch, coordEpoch: -1}
	}
}
