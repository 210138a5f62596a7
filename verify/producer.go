package verify

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// producer is one kgo client writing unique values and recording the
// outcome of each.
type producer struct {
	id         int
	cfg        *Config
	partitions int32
	rate       int // records per second for this producer; 0 is unlimited
	cl         *kgo.Client

	mu      sync.Mutex // records, cutoff
	records []Produced
	// cutoff is set once the run stopped waiting: outcomes reported
	// after it (the client failing what it still holds as it closes) stay
	// unknown.
	cutoff bool
}

// producerOpts are the kgo options of producer id for cfg.
func producerOpts(cfg *Config, id int) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.DefaultProduceTopic(cfg.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.MaxBufferedRecords(10_000),
	}
	switch cfg.Acks {
	case AcksAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case AcksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	case AcksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	}
	if !cfg.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	if cfg.Transactional {
		opts = append(opts, kgo.TransactionalID(fmt.Sprintf("%s-p%d", cfg.RunID, id)), kgo.TransactionTimeout(10*time.Second))
	}
	return opts
}

// produce runs every producer for cfg.Duration, then lets records in flight
// finish for up to cfg.DrainTimeout, and returns every attempt's outcome.
func produce(ctx context.Context, cfg *Config, partitions int32, base []kgo.Opt) ([]Produced, error) {
	ps := make([]*producer, cfg.Producers)
	defer func() {
		for _, p := range ps {
			if p != nil {
				p.cl.Close()
			}
		}
	}()
	for i := range ps {
		cl, err := kgo.NewClient(append(append([]kgo.Opt{}, base...), producerOpts(cfg, i)...)...)
		if err != nil {
			return nil, err
		}
		rate := 0
		if cfg.Rate > 0 {
			// Spread the total; the first producers take the remainder.
			rate = cfg.Rate / cfg.Producers
			if i < cfg.Rate%cfg.Producers {
				rate++
			}
		}
		ps[i] = &producer{id: i, cfg: cfg, partitions: partitions, rate: rate, cl: cl}
	}
	end := time.Now().Add(cfg.Duration)
	drainCtx, cancel := context.WithDeadline(ctx, end.Add(cfg.DrainTimeout))
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(func() { p.run(drainCtx, end) })
	}
	wg.Wait()
	var out []Produced
	for _, p := range ps {
		p.mu.Lock()
		p.cutoff = true
		out = append(out, p.records...)
		p.mu.Unlock()
	}
	return out, nil
}

// run produces until end (or ctx ends), at the producer's rate, then
// flushes within ctx.
func (p *producer) run(ctx context.Context, end time.Time) {
	rng := rand.New(rand.NewPCG(uint64(p.cfg.Seed), uint64(p.id)))
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	txnLeft, txnNo, txnFirst := 0, 0, 0 // records left in the open transaction, its number, its first record
	for seq := int64(0); ctx.Err() == nil; seq++ {
		if p.rate > 0 {
			// Pace by the schedule, not by the last send, so a slow
			// produce call does not lower the rate.
			next := start.Add(time.Duration(seq) * time.Second / time.Duration(p.rate))
			if next.After(end) {
				break
			}
			timer.Reset(time.Until(next))
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if !time.Now().Before(end) || ctx.Err() != nil {
			break
		}
		if p.cfg.Transactional && txnLeft == 0 {
			if err := p.cl.BeginTransaction(); err != nil {
				p.cfg.Logger.Warn("producer cannot begin a transaction", "producer", p.id, "err", err)
				break
			}
			txnLeft, txnNo = 1+rng.IntN(p.cfg.TxnMaxRecords), txnNo+1
			p.mu.Lock()
			txnFirst = len(p.records)
			p.mu.Unlock()
		}
		value := makeValue(p.cfg.RunID, p.id, seq, p.cfg.RecordSize, rng)
		part := rng.Int32N(p.partitions)
		p.mu.Lock()
		i := len(p.records)
		p.records = append(p.records, Produced{Value: value, Partition: part, Offset: -1})
		if p.cfg.Transactional {
			p.records[i].Txn = fmt.Sprintf("p%d-t%d", p.id, txnNo)
		}
		p.mu.Unlock()
		p.cl.Produce(ctx, &kgo.Record{Value: []byte(value), Partition: part}, func(r *kgo.Record, err error) {
			p.finish(i, r, err)
		})
		if p.cfg.Transactional {
			if txnLeft--; txnLeft == 0 {
				p.endTxn(ctx, txnFirst, rng.IntN(10) != 0) // a tenth aborted
			}
		}
	}
	if p.cfg.Transactional && txnLeft > 0 {
		p.endTxn(ctx, txnFirst, false)
	}
	if err := p.cl.Flush(ctx); err != nil {
		p.cfg.Logger.Warn("producer gave up waiting for records in flight", "producer", p.id, "err", err)
	}
}

// endTxn flushes the open transaction (records txnFirst on) and ends it:
// committed, its records are acknowledged where they were written;
// aborted, they are aborted; if the end fails they stay undecided
// (unknown), to be seen whole or not at all.
func (p *producer) endTxn(ctx context.Context, txnFirst int, commit bool) {
	flushErr := p.cl.Flush(ctx)
	end := kgo.TryAbort
	if commit && flushErr == nil {
		end = kgo.TryCommit
	}
	err := p.cl.EndTransaction(ctx, end)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutoff {
		return
	}
	for i := txnFirst; i < len(p.records); i++ {
		rec := &p.records[i]
		switch {
		case err != nil:
			rec.Outcome, rec.Err = Unknown, err.Error()
		case end == kgo.TryAbort:
			rec.Outcome = Aborted
		case rec.Offset >= 0:
			rec.Outcome = Acknowledged
		default:
			rec.Outcome = Unknown // committed, but its own produce was not acknowledged
		}
	}
	if err != nil {
		p.cfg.Logger.Info("transaction end failed; its records are undecided", "producer", p.id, "err", err)
	}
}

// finish records the outcome of the i-th record.
func (p *producer) finish(i int, r *kgo.Record, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cutoff {
		return
	}
	rec := &p.records[i]
	switch {
	case err == nil && p.cfg.Transactional:
		// Written, not yet committed: endTxn decides.
		rec.Partition, rec.Offset = r.Partition, r.Offset
	case err == nil:
		rec.Outcome = Acknowledged
		rec.Partition, rec.AckedAt = r.Partition, time.Now()
		if p.cfg.Acks != AcksNone {
			rec.Offset = r.Offset
		}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), errors.Is(err, kgo.ErrClientClosed):
		// The run stopped waiting; the record may or may not be written.
		rec.Outcome = Unknown
	default:
		rec.Outcome = Failed
		rec.Err = err.Error()
	}
}
