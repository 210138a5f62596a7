package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/group"
	"github.com/mlog/mlog/storage/batch"
)

// Log is one __transaction_state partition as the coordinator uses it.
type Log interface {
	// Commit appends records and returns once they are committed (acks=all).
	Commit(ctx context.Context, recs []batch.Record) error
	// Replay calls fn with every record from the start of the log, with
	// the header of its batch.
	Replay(fn func(batch.Header, batch.Record) error) error
}

// Markers asks the leaders of a transaction's partitions to end it.
type Markers struct {
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool
	CoordinatorEpoch int32
	Partitions       []TopicPartition
}

// Config configures the coordinator.
type Config struct {
	// MaxTimeout bounds the timeout a producer may ask for
	// (transaction.max.timeout.ms).
	MaxTimeout time.Duration
	// AbortInterval is how often transactions that outlived their timeout
	// are looked for and aborted.
	AbortInterval time.Duration
	// NewProducerID allocates a producer id.
	NewProducerID func(ctx context.Context) (int64, error)
	// WriteMarkers has every partition's leader write the markers, and
	// returns once each holds them (or the partition is gone), retrying
	// as it needs to until ctx ends.
	WriteMarkers func(ctx context.Context, m Markers) error
	// PartitionExists reports whether a topic partition exists now.
	PartitionExists func(topic string, partition int32) bool
	// OffsetsPartitions is how many partitions __consumer_offsets has, for
	// AddOffsetsToTxn.
	OffsetsPartitions func() int
	Logger            *slog.Logger
}

// DefaultConfig returns Kafka's defaults: 15 minutes at most, looked for
// every 10 seconds.
func DefaultConfig() Config {
	return Config{MaxTimeout: 15 * time.Minute, AbortInterval: 10 * time.Second}
}

// ErrInvalidConfig means a Config failed Validate.
var ErrInvalidConfig = errors.New("txn: invalid config")

// Validate checks the settings and fills the logger.
func (c *Config) Validate() error {
	switch {
	case c.MaxTimeout <= 0 || c.AbortInterval <= 0:
		return fmt.Errorf("%w: max timeout %v, abort interval %v", ErrInvalidConfig, c.MaxTimeout, c.AbortInterval)
	case c.NewProducerID == nil || c.WriteMarkers == nil || c.PartitionExists == nil || c.OffsetsPartitions == nil:
		return fmt.Errorf("%w: NewProducerID, WriteMarkers, PartitionExists and OffsetsPartitions are required", ErrInvalidConfig)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}

// Coordinator coordinates the transactions of the __transaction_state
// partitions this broker leads.
type Coordinator struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	shards map[int32]*shard
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// shard is one led __transaction_state partition and its transactions.
type shard struct {
	id     int32
	log    Log
	epoch  int32 // the coordinator epoch: the partition's leader epoch
	ready  chan struct{}
	err    error
	gone   bool
	ctx    context.Context // ends when the shard is resigned
	cancel context.CancelFunc
	txns   map[string]*entry
}

type entry struct {
	meta *Metadata // nil while the first change is written
	busy bool      // a change is being written
}

// New starts a coordinator with no partitions.
func New(cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Coordinator{cfg: cfg, log: cfg.Logger, shards: map[int32]*shard{}, stop: make(chan struct{})}
	c.wg.Add(1)
	go c.abortLoop()
	return c, nil
}

// Close resigns every partition and waits for the coordinator's work.
func (c *Coordinator) Close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	close(c.stop)
	for id := range c.shards {
		c.resignLocked(id)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Elected takes over a __transaction_state partition this broker now leads
// in leader epoch epoch: its records are replayed in the background, and
// transactions found half ended are finished.
func (c *Coordinator) Elected(id int32, log Log, epoch int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	if s := c.shards[id]; s != nil && s.log == log && s.epoch == epoch {
		return
	}
	c.resignLocked(id)
	ctx, cancel := context.WithCancel(context.Background())
	s := &shard{id: id, log: log, epoch: epoch, ready: make(chan struct{}), ctx: ctx, cancel: cancel, txns: map[string]*entry{}}
	c.shards[id] = s
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		txns, err := replay(log)
		c.mu.Lock()
		if !s.gone {
			s.err = err
			for id, m := range txns {
				s.txns[id] = &entry{meta: m}
			}
		}
		var resume []*Metadata
		for _, m := range txns {
			if m.State == kmsg.TransactionStatePrepareCommit || m.State == kmsg.TransactionStatePrepareAbort {
				resume = append(resume, m)
			}
		}
		close(s.ready)
		if err == nil && !s.gone {
			for _, m := range resume {
				c.goComplete(s, m)
			}
		}
		c.mu.Unlock()
		if err != nil {
			c.log.Error("loading transactions", "partition", id, "err", err)
		} else {
			c.log.Info("transactions loaded", "partition", id, "transactional_ids", len(txns), "resumed", len(resume))
		}
	}()
}

// Resigned drops a partition this broker no longer leads.
func (c *Coordinator) Resigned(id int32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resignLocked(id)
}

func (c *Coordinator) resignLocked(id int32) {
	if s := c.shards[id]; s != nil {
		s.gone = true
		s.cancel()
		delete(c.shards, id)
	}
}

// loaded reports whether the shard's replay finished.
func (s *shard) loaded() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

func replay(log Log) (map[string]*Metadata, error) {
	txns := map[string]*Metadata{}
	err := log.Replay(func(h batch.Header, r batch.Record) error {
		if h.Control() {
			return nil
		}
		id, m, err := decodeRecord(r)
		if err != nil {
			return err
		}
		if m == nil {
			delete(txns, id)
		} else {
			txns[id] = m
		}
		return nil
	})
	return txns, err
}

// shardFor finds the loaded shard coordinating id, or the code telling the
// client to look again (NOT_COORDINATOR) or wait (COORDINATOR_LOAD_IN_PROGRESS).
func (c *Coordinator) shardFor(id string, partitions int) (*shard, int16) {
	c.mu.Lock()
	s := c.shards[group.PartitionFor(id, partitions)]
	c.mu.Unlock()
	if s == nil {
		return nil, kerr.NotCoordinator.Code
	}
	if !s.loaded() {
		return nil, kerr.CoordinatorLoadInProgress.Code
	}
	if s.err != nil {
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	return s, 0
}

// errSame means decide keeps the metadata as it is: nothing is written.
var errSame = errors.New("txn: no change")

// change runs one change of a transaction: decide, under the lock, returns
// the next metadata (errSame: none) or a Kafka error code; the next
// metadata is written with acks=all outside the lock, then published. A
// transaction being changed refuses others (CONCURRENT_TRANSACTIONS).
func (c *Coordinator) change(ctx context.Context, s *shard, id string, decide func(cur *Metadata) (*Metadata, int16, error)) (*Metadata, int16) {
	c.mu.Lock()
	if s.gone {
		c.mu.Unlock()
		return nil, kerr.NotCoordinator.Code
	}
	e := s.txns[id]
	if e != nil && e.busy {
		c.mu.Unlock()
		return nil, kerr.ConcurrentTransactions.Code
	}
	var cur *Metadata
	if e != nil {
		cur = e.meta
	}
	next, code, err := decide(cur)
	if code != 0 || errors.Is(err, errSame) {
		c.mu.Unlock()
		return cur, code
	}
	if e == nil {
		e = &entry{}
		s.txns[id] = e
	}
	e.busy = true
	c.mu.Unlock()

	werr := s.log.Commit(ctx, []batch.Record{next.record(time.Now().UnixMilli())})

	c.mu.Lock()
	defer c.mu.Unlock()
	e.busy = false
	if werr == nil && s.gone {
		// Resigned meanwhile: the next coordinator may have replayed the
		// log before this record; the client must ask it again.
		return nil, kerr.NotCoordinator.Code
	}
	if werr != nil {
		if e.meta == nil {
			delete(s.txns, id)
		}
		c.log.Warn("transaction metadata not written", "transactional_id", id, "err", werr)
		return nil, kerr.NotCoordinator.Code // the client finds the coordinator again
	}
	e.meta = next
	if next.State == kmsg.TransactionStatePrepareCommit || next.State == kmsg.TransactionStatePrepareAbort {
		c.goComplete(s, next)
	}
	return next, 0
}

// goComplete writes a prepared transaction's markers and then its
// completion, on its own goroutine, until done or the shard is resigned
// (the next coordinator resumes it). Caller holds mu.
func (c *Coordinator) goComplete(s *shard, m *Metadata) {
	if c.closed {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		commit := m.State == kmsg.TransactionStatePrepareCommit
		if err := c.cfg.WriteMarkers(s.ctx, Markers{ProducerID: m.ProducerID, ProducerEpoch: m.ProducerEpoch, Commit: commit,
			CoordinatorEpoch: s.epoch, Partitions: m.Partitions}); err != nil {
			c.log.Info("transaction markers not written; the partition's next coordinator resumes", "transactional_id", m.ID, "err", err)
			return
		}
		done := kmsg.TransactionStateCompleteAbort
		if commit {
			done = kmsg.TransactionStateCompleteCommit
		}
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, 2*time.Second) {
			_, code := c.change(s.ctx, s, m.ID, func(cur *Metadata) (*Metadata, int16, error) {
				if cur == nil || cur.State != m.State || cur.ProducerEpoch != m.ProducerEpoch {
					return nil, 0, errSame
				}
				next := cur.clone()
				next.State, next.Partitions, next.LastUpdateMs = done, nil, time.Now().UnixMilli()
				return next, 0, nil
			})
			if code == 0 || s.ctx.Err() != nil {
				return
			}
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
		}
	}()
}

// abortLoop aborts transactions that outlived their timeout, fencing their
// producer (epoch + 1) so its late writes are refused.
func (c *Coordinator) abortLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.AbortInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		now := time.Now().UnixMilli()
		type expired struct {
			s  *shard
			id string
		}
		var due []expired
		c.mu.Lock()
		for _, s := range c.shards {
			if !s.loaded() {
				continue
			}
			for id, e := range s.txns {
				if m := e.meta; m != nil && !e.busy && m.State == kmsg.TransactionStateOngoing && now-m.StartMs > int64(m.TimeoutMs) {
					due = append(due, expired{s, id})
				}
			}
		}
		c.mu.Unlock()
		for _, d := range due {
			_, code := c.change(d.s.ctx, d.s, d.id, func(cur *Metadata) (*Metadata, int16, error) {
				if cur == nil || cur.State != kmsg.TransactionStateOngoing || time.Now().UnixMilli()-cur.StartMs <= int64(cur.TimeoutMs) {
					return nil, 0, errSame
				}
				return fenceAndAbort(cur), 0, nil
			})
			if code == 0 {
				c.log.Info("aborting a transaction past its timeout", "transactional_id", d.id)
			}
		}
	}
}

// fenceAndAbort is the abort of an open transaction whose producer is
// fenced: the epoch moves on, so the old producer's writes and its EndTxn
// are refused.
func fenceAndAbort(cur *Metadata) *Metadata {
	next := cur.clone()
	if next.ProducerEpoch < math.MaxInt16 {
		next.ProducerEpoch++
	}
	next.State, next.LastUpdateMs = kmsg.TransactionStatePrepareAbort, time.Now().UnixMilli()
	return next
}
