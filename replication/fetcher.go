package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/protocol"
)

// Key names a partition.
type Key struct {
	Topic     string
	Partition int32
}

type followed struct {
	p        *partition.Partition
	epoch    int32
	truncate bool // find the divergence point before fetching
}

// Fetcher pulls the partitions this broker follows from one leader.
type Fetcher struct {
	self     int32
	leader   int32
	client   *protocol.Client
	maxBytes int32
	maxWait  time.Duration
	log      *slog.Logger

	paused atomic.Bool // tests hold replication back to build divergent logs
	parked atomic.Bool // paused, with no fetch in flight

	mu    sync.Mutex
	parts map[Key]*followed
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// NewFetcher starts a fetcher from the broker leader at addr.
func NewFetcher(self, leader int32, addr string, maxBytes int32, logger *slog.Logger) *Fetcher {
	f := &Fetcher{self: self, leader: leader, client: protocol.NewClient(addr, fmt.Sprintf("mlog-replica-%d", self)),
		maxBytes: maxBytes, maxWait: 500 * time.Millisecond, log: logger.With("leader", leader, "addr", addr),
		parts: map[Key]*followed{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

// Pause stops (or resumes) fetching without forgetting the partitions.
// A fetch in flight still completes; Parked tells when none is.
func (f *Fetcher) Pause(paused bool) {
	f.paused.Store(paused)
	f.poke()
}

// Parked reports whether the fetcher is paused with no fetch in flight.
func (f *Fetcher) Parked() bool { return f.parked.Load() }

// Addr is the leader's address.
func (f *Fetcher) Addr() string { return f.client.Addr() }

// Follow adds or updates a partition followed in epoch.
func (f *Fetcher) Follow(k Key, p *partition.Partition, epoch int32) {
	f.mu.Lock()
	cur := f.parts[k]
	if cur == nil || cur.epoch != epoch || cur.p != p {
		f.parts[k] = &followed{p: p, epoch: epoch, truncate: true}
	}
	f.mu.Unlock()
	f.poke()
}

// Unfollow stops fetching a partition.
func (f *Fetcher) Unfollow(k Key) {
	f.mu.Lock()
	delete(f.parts, k)
	f.mu.Unlock()
}

// Empty reports whether the fetcher follows nothing.
func (f *Fetcher) Empty() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.parts) == 0
}

func (f *Fetcher) poke() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Close stops the fetcher and waits for it.
func (f *Fetcher) Close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	_ = f.client.Close()
	<-f.done
}

func (f *Fetcher) snapshot() map[Key]*followed {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[Key]*followed, len(f.parts))
	for k, v := range f.parts {
		out[k] = v
	}
	return out
}

func (f *Fetcher) run() {
	defer close(f.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-f.stop
		cancel()
	}()
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-f.stop:
				return
			case <-time.After(backoff):
			}
		}
		parts := f.snapshot()
		if len(parts) == 0 || f.paused.Load() {
			f.parked.Store(f.paused.Load())
			select {
			case <-f.stop:
				return
			case <-f.wake:
			}
			f.parked.Store(false)
			continue
		}
		err := f.round(ctx, parts)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			f.log.Debug("replica fetch failed", "err", err, "retry_in", backoff)
		default:
			backoff = 0
		}
	}
}

// round truncates what needs it, then fetches once.
func (f *Fetcher) round(ctx context.Context, parts map[Key]*followed) error {
	for k, fp := range parts {
		if fp.truncate {
			// One partition's trouble (a leader not ready for its epoch
			// yet) must not stop the others: it is retried next round.
			if err := f.truncate(ctx, k, fp); err != nil {
				if ctx.Err() != nil {
					return err
				}
				f.log.Debug("truncation check failed", "topic", k.Topic, "partition", k.Partition, "err", err)
			}
		}
	}
	req := kmsg.NewPtrFetchRequest()
	req.Version = 12
	req.ReplicaID = f.self
	req.MaxWaitMillis = int32(f.maxWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = f.maxBytes
	req.SessionEpoch = -1
	byTopic := map[string]int{}
	for k, fp := range parts {
		if fp.truncate {
			continue
		}
		i, ok := byTopic[k.Topic]
		if !ok {
			i = len(req.Topics)
			byTopic[k.Topic] = i
			req.Topics = append(req.Topics, kmsg.FetchRequestTopic{Topic: k.Topic})
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = k.Partition
		rp.CurrentLeaderEpoch = fp.epoch
		rp.FetchOffset = fp.p.LogEndOffset()
		rp.LastFetchedEpoch = fp.p.LatestEpoch()
		rp.LogStartOffset = fp.p.LogStartOffset()
		rp.PartitionMaxBytes = f.maxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, f.maxWait+10*time.Second)
	defer cancel()
	kresp, err := f.client.Request(rctx, req)
	if err != nil {
		return err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return kerr.ErrorForCode(resp.ErrorCode)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			k := Key{rt.Topic, rp.Partition}
			fp := parts[k]
			if fp == nil {
				continue
			}
			if err := f.apply(k, fp, rp); err != nil {
				f.log.Warn("replica fetch", "topic", k.Topic, "partition", k.Partition, "err", err)
			}
		}
	}
	return nil
}

func (f *Fetcher) apply(k Key, fp *followed, rp kmsg.FetchResponseTopicPartition) error {
	switch err := kerr.ErrorForCode(rp.ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.OffsetOutOfRange):
		// Below the leader's log start (retention moved it): start again
		// where the leader's log starts. Above its end: this replica holds
		// a tail the leader lacks; cut back to what the leader has
		// committed and find the divergence again.
		if fp.p.LogEndOffset() < rp.LogStartOffset {
			return fp.p.ResetTo(rp.LogStartOffset)
		}
		if rp.HighWatermark >= 0 && rp.HighWatermark < fp.p.LogEndOffset() {
			if terr := fp.p.TruncateTo(rp.HighWatermark); terr != nil {
				return terr
			}
		}
		f.markTruncate(k)
		return err
	default:
		return err // not leader, fenced: metadata will move us
	}
	if len(rp.RecordBatches) > 0 {
		if _, err := fp.p.AppendReplicated(rp.RecordBatches); err != nil {
			f.markTruncate(k)
			return err
		}
	}
	fp.p.SetHighWatermark(min(rp.HighWatermark, fp.p.LogEndOffset()))
	return nil
}

func (f *Fetcher) markTruncate(k Key) {
	f.mu.Lock()
	if cur := f.parts[k]; cur != nil {
		cur.truncate = true
	}
	f.mu.Unlock()
}

// truncate asks the leader where this replica's latest epoch ended and cuts
// the log there (KIP-279: when the leader answers an older epoch, also at
// this replica's own end of that epoch).
func (f *Fetcher) truncate(ctx context.Context, k Key, fp *followed) error {
	mine := fp.p.LatestEpoch()
	target := fp.p.LogEndOffset()
	if mine != partition.UndefinedEpoch {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = 3
		req.ReplicaID = f.self
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = k.Partition, fp.epoch, mine
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: k.Topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		kresp, err := f.client.Request(rctx, req)
		cancel()
		if err != nil {
			return err
		}
		resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			return fmt.Errorf("replication: malformed OffsetForLeaderEpoch response")
		}
		r := resp.Topics[0].Partitions[0]
		if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
			return err
		}
		if r.LeaderEpoch == partition.UndefinedEpoch || r.EndOffset < 0 {
			target = min(target, fp.p.HighWatermark()) // the leader knows nothing older: keep what is committed
		} else {
			end := r.EndOffset
			if r.LeaderEpoch < mine {
				_, own := fp.p.EndOffsetForEpoch(r.LeaderEpoch)
				end = min(end, own)
			}
			target = min(target, end)
		}
	}
	if target < fp.p.LogEndOffset() {
		f.log.Info("truncating divergent tail", "topic", k.Topic, "partition", k.Partition, "from", fp.p.LogEndOffset(), "to", target)
		if err := fp.p.TruncateTo(target); err != nil {
			return err
		}
	}
	f.mu.Lock()
	if cur := f.parts[k]; cur == fp {
		cur.truncate = false
	}
	f.mu.Unlock()
	fp.truncate = false
	return nil
}
