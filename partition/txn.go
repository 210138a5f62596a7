package partition

// Transactions (KIP-98) as one partition sees them. A transactional
// producer's first batch after its last marker opens a transaction here;
// a marker (a control batch the broker writes for the coordinator: commit
// or abort) ends it. The last stable offset (LSO) is the first offset of
// the oldest open transaction, or the high watermark when none is open:
// read_committed consumers read below it. Aborted transactions are kept as
// (producer, first offset, marker offset) so that a read_committed fetch
// can name those its data overlaps and the consumer drops their records.
//
// The state is derived from the log alone, so a follower keeps it from the
// batches it replicates and anyone rebuilds it by replaying the log
// (Open, after a truncation). It lives under Partition.mu.

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/mlog/mlog/storage"
	"github.com/mlog/mlog/storage/batch"
)

// AbortedTxn is an aborted transaction's range in this partition: its
// producer, its first batch's offset and its abort marker's offset.
type AbortedTxn struct {
	ProducerID  int64
	FirstOffset int64
	LastOffset  int64
}

// txnState is the partition's open transactions (producer id to the first
// offset of its open transaction) and the aborted ones, ascending by
// marker offset.
type txnState struct {
	open    map[int64]int64
	aborted []AbortedTxn
}

func newTxnState() txnState { return txnState{open: map[int64]int64{}} }

// batch notes a transactional data batch at offset.
func (t *txnState) batch(producerID, offset int64) {
	if _, ok := t.open[producerID]; !ok {
		t.open[producerID] = offset
	}
}

// marker ends producerID's open transaction at the marker's offset;
// an abort keeps its range. A marker for a producer with nothing open
// here changes nothing (Kafka writes markers to every partition the
// transaction named).
func (t *txnState) marker(producerID, offset int64, typ int16) {
	first, ok := t.open[producerID]
	if !ok {
		return
	}
	delete(t.open, producerID)
	if typ == batch.MarkerAbort {
		t.aborted = append(t.aborted, AbortedTxn{ProducerID: producerID, FirstOffset: first, LastOffset: offset})
	}
}

// firstOpen is the first offset of the oldest open transaction, -1 with
// none open.
func (t *txnState) firstOpen() int64 {
	first := int64(-1)
	for _, off := range t.open {
		if first < 0 || off < first {
			first = off
		}
	}
	return first
}

// prune forgets aborted transactions wholly below the log start.
func (t *txnState) prune(logStart int64) {
	i := 0
	for i < len(t.aborted) && t.aborted[i].LastOffset < logStart {
		i++
	}
	t.aborted = slices.Delete(t.aborted, 0, i)
}

// applyHeader keeps the state in step with one batch appended to the log
// (its bytes whole in b, or nil when only the header is at hand and the
// batch is not a control batch).
func (t *txnState) apply(h batch.Header, b []byte) error {
	switch {
	case !h.Transactional():
	case !h.Control():
		t.batch(h.ProducerID, h.BaseOffset)
	default:
		typ, err := batch.MarkerType(b)
		if err != nil {
			return fmt.Errorf("partition: control batch at %d: %w", h.BaseOffset, err)
		}
		t.marker(h.ProducerID, h.BaseOffset, typ)
	}
	return nil
}

// publishLSO stores where the oldest open transaction starts, for
// LastStableOffset to read without the lock. Caller holds mu.
func (p *Partition) publishLSO() { p.firstOpen.Store(p.txns.firstOpen()) }

// holdLSOLocked keeps the last stable offset at the log end before a
// producer with nothing open here appends its transaction's first batch:
// the append may move the high watermark at once, and the LSO must never
// pass the batch, even for a moment. Caller holds mu.
func (p *Partition) holdLSOLocked(producerID int64) {
	if _, ok := p.txns.open[producerID]; ok {
		return
	}
	end := p.log.LogEndOffset()
	if first := p.firstOpen.Load(); first < 0 || end < first {
		p.firstOpen.Store(end)
	}
}

// LastStableOffset is the offset below which every transaction is decided:
// the first offset of the oldest open transaction, or the high watermark.
func (p *Partition) LastStableOffset() int64 {
	hw := p.HighWatermark()
	if first := p.firstOpen.Load(); first >= 0 && first < hw {
		return first
	}
	return hw
}

// AbortedTxns lists the aborted transactions with records in [from, to):
// what a read_committed fetch of that range must tell the consumer.
func (p *Partition) AbortedTxns(from, to int64) []AbortedTxn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []AbortedTxn
	for _, a := range p.txns.aborted {
		if a.LastOffset >= from && a.FirstOffset < to {
			out = append(out, a)
		}
	}
	return out
}

// OpenTxns is how many transactions are open in this partition.
func (p *Partition) OpenTxns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.txns.open)
}

// WriteMarker ends a producer's transaction here with a commit or abort
// marker, as the leader, for the transaction coordinator
// (WriteTxnMarkers). A marker older than the producer's epoch is refused
// (ErrInvalidProducerEpoch); a newer epoch fences the producer's older
// batches from then on. WaitAck with acks=all finishes it.
func (p *Partition) WriteMarker(producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) (Appended, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return Appended{}, err
	}
	ps := p.producers[producerID]
	switch {
	case ps != nil && producerEpoch < ps.epoch:
		return Appended{}, fmt.Errorf("%w: marker for producer %d epoch %d, current %d", ErrInvalidProducerEpoch, producerID, producerEpoch, ps.epoch)
	case ps != nil && coordinatorEpoch < ps.coordEpoch:
		// A deposed coordinator's late retry must not end the
		// producer's next transaction with the old decision.
		return Appended{}, fmt.Errorf("%w: marker of coordinator epoch %d, %d seen", ErrCoordinatorFenced, coordinatorEpoch, ps.coordEpoch)
	}
	b := batch.BuildMarker(producerID, producerEpoch, commit, coordinatorEpoch, time.Now().UnixMilli())
	res, err := p.log.AppendBroker(b, p.leaderEpoch.Load())
	if err != nil {
		return Appended{}, err
	}
	if ps == nil || producerEpoch > ps.epoch {
		ps = &producerState{epoch: producerEpoch, coordEpoch: -1}
		p.producers[producerID] = ps
	}
	ps.coordEpoch = coordinatorEpoch
	typ := batch.MarkerAbort
	if commit {
		typ = batch.MarkerCommit
	}
	p.txns.marker(producerID, res.BaseOffset, typ)
	p.txns.prune(p.log.LogStartOffset())
	p.publishLSO()
	return Appended{res: res}, nil
}

// AppendForTxn appends, as the leader, a batch the broker writes on behalf
// of a transactional producer (the group coordinator's TxnOffsetCommit
// records): transactional, of the producer's id and epoch, without a
// sequence. An older epoch than the producer's is refused; the batch opens
// or joins the producer's transaction here.
func (p *Partition) AppendForTxn(b []byte) (Appended, error) {
	h, err := batch.Validate(b)
	if err != nil {
		return Appended{}, err
	}
	if !h.Transactional() || h.Control() || h.ProducerID < 0 {
		return Appended{}, fmt.Errorf("%w: not a transactional data batch", batch.ErrCorrupt)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writableLocked(); err != nil {
		return Appended{}, err
	}
	ps := p.producers[h.ProducerID]
	if ps != nil && h.ProducerEpoch < ps.epoch {
		return Appended{}, fmt.Errorf("%w: producer %d epoch %d, current %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, ps.epoch)
	}
	p.holdLSOLocked(h.ProducerID)
	res, err := p.log.AppendBroker(b, p.leaderEpoch.Load())
	if err != nil {
		p.publishLSO()
		return Appended{}, err
	}
	if ps == nil || h.ProducerEpoch > ps.epoch {
		p.producers[h.ProducerID] = &producerState{epoch: h.ProducerEpoch, coordEpoch: -1}
	}
	p.txns.batch(h.ProducerID, res.BaseOffset)
	p.publishLSO()
	return Appended{res: res}, nil
}

// rebuildTxnsLocked replays the log into the transaction state: a header
// scan, then the few control batches it found read for their type.
func (p *Partition) rebuildTxnsLocked() error {
	p.txns = newTxnState()
	type pending struct {
		producerID, first, marker int64
		size                      int64
	}
	var ended []pending
	err := p.log.ScanHeaders(p.log.LogStartOffset(), func(h batch.Header) error {
		switch {
		case !h.Transactional():
		case !h.Control():
			p.txns.batch(h.ProducerID, h.BaseOffset)
		default:
			if first, ok := p.txns.open[h.ProducerID]; ok {
				ended = append(ended, pending{h.ProducerID, first, h.BaseOffset, h.Size()})
				delete(p.txns.open, h.ProducerID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range ended {
		typ, err := p.readMarkerType(e.marker, e.size)
		if err != nil {
			return err
		}
		if typ == batch.MarkerAbort {
			p.txns.aborted = append(p.txns.aborted, AbortedTxn{ProducerID: e.producerID, FirstOffset: e.first, LastOffset: e.marker})
		}
	}
	p.publishLSO()
	return nil
}

// readMarkerType reads the control batch at offset.
func (p *Partition) readMarkerType(offset, size int64) (int16, error) {
	r, err := p.log.Read(offset, size, offset+1)
	if err != nil {
		return 0, err
	}
	defer r.Release()
	b, err := r.Bytes()
	if err != nil {
		return 0, err
	}
	return batch.MarkerType(b)
}

// ActiveProducer is one producer as DescribeProducers shows it.
type ActiveProducer struct {
	ProducerID            int64
	ProducerEpoch         int16
	LastSequence          int32 // -1 when none is remembered
	LastTimestamp         int64 // -1 when none is remembered
	CurrentTxnStartOffset int64 // -1 without an open transaction
}

// ActiveProducers lists the producers this replica remembers, with the
// first offset of each one's open transaction.
func (p *Partition) ActiveProducers() []ActiveProducer {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]ActiveProducer, 0, len(p.producers))
	for id, ps := range p.producers {
		ap := ActiveProducer{ProducerID: id, ProducerEpoch: ps.epoch, LastSequence: -1, LastTimestamp: -1, CurrentTxnStartOffset: -1}
		if n := len(ps.batches); n > 0 {
			ap.LastSequence, ap.LastTimestamp = ps.batches[n-1].lastSeq, ps.batches[n-1].res.MaxTimestamp
		}
		if first, ok := p.txns.open[id]; ok {
			ap.CurrentTxnStartOffset = first
		}
		out = append(out, ap)
	}
	slices.SortFunc(out, func(a, b ActiveProducer) int { return cmp.Compare(a.ProducerID, b.ProducerID) })
	return out
}

// Compact compacts the log (cleanup.policy=compact) below the last stable
// offset, removing the records of aborted transactions, so that an
// aborted value never supersedes a committed one.
func (p *Partition) Compact() (storage.CompactStats, error) {
	p.mu.Lock()
	aborted := slices.Clone(p.txns.aborted)
	p.mu.Unlock()
	return p.log.Compact(p.LastStableOffset(), -1, func(h batch.Header) bool {
		for _, a := range aborted {
			if a.ProducerID == h.ProducerID && a.FirstOffset <= h.BaseOffset && h.BaseOffset < a.LastOffset {
				return true
			}
		}
		return false
	})
}
