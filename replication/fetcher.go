package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/mlog/mlog/internal/brokerclient"
	"github.com/mlog/mlog/partition"
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
	// throttled fetches count against the fetcher's throttle rate (a
	// replica being added by a reassignment).
	throttled bool
	// retryAt holds a partition whose last truncation or fetch failed
	// back (Kafka's replica.fetch.backoff.ms): a leader answers such a
	// partition at once, and without it the loop would spin. Only the
	// fetcher's goroutine touches it.
	retryAt time.Time
}

// keptReplyBytes bounds the reply buffer a fetcher keeps between rounds.
const keptReplyBytes = 64 << 20

// partitionBackoff is how long a failed partition waits, as Kafka's
// replica.fetch.backoff.ms.
const partitionBackoff = time.Second

// Fetcher pulls the partitions this broker follows from one leader.
type Fetcher struct {
	self     int32
	leader   int32
	client   *brokerclient.Client
	maxBytes int32
	maxWait  time.Duration
	log      *slog.Logger

	paused atomic.Bool // tests hold replication back to build divergent logs
	parked atomic.Bool // paused, with no fetch in flight

	// throttle bounds what the throttled partitions fetch (nil: nothing
	// does), shared with the broker's other fetchers.
	throttle *Throttle

	// sess is the fetch session with the leader (KIP-227); only the
	// fetcher's goroutine touches it.
	sess session

	mu    sync.Mutex
	parts map[Key]*followed
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// NewFetcher starts a fetcher from the broker leader at addr, connecting
// as sec says (TLS, SASL login; nil for neither). clientID identifies this
// broker's incarnation to the leader, which refuses replica requests from
// any other.
func NewFetcher(self, leader int32, addr, clientID string, sec *brokerclient.Security, maxBytes int32, logger *slog.Logger) *Fetcher {
	f := &Fetcher{self: self, leader: leader, client: brokerclient.NewClient(addr, clientID, sec),
		maxBytes: maxBytes, maxWait: 500 * time.Millisecond, log: logger.With("leader", leader, "addr", addr),
		parts: map[Key]*followed{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	// A reply is applied (its batches written to the logs) before the next
	// request, and nothing of it is kept: one buffer serves every reply.
	f.client.KeepBuffer(keptReplyBytes)
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

// Follow adds or updates a partition followed in epoch; throttled puts
// it under the fetcher's Throttle.
func (f *Fetcher) Follow(k Key, p *partition.Partition, epoch int32, throttled bool) {
	f.mu.Lock()
	cur := f.parts[k]
	if cur == nil || cur.epoch != epoch || cur.p != p {
		f.parts[k] = &followed{p: p, epoch: epoch, truncate: true, throttled: throttled}
	} else if cur.throttled != throttled {
		next := *cur
		next.throttled = throttled
		f.parts[k] = &next
	}
	f.mu.Unlock()
	f.poke()
}

// SetThrottle makes the throttled partitions share t. Call before the
// first Follow.
func (f *Fetcher) SetThrottle(t *Throttle) {
	f.mu.Lock()
	f.throttle = t
	f.mu.Unlock()
}

// Poke wakes the fetcher from a backoff (a throttle lifted).
func (f *Fetcher) Poke() { f.poke() }

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
			case <-f.wake: // a new partition, or the throttle lifted
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
		idle, err := f.round(ctx, parts)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, 50*time.Millisecond), time.Second)
			f.log.Debug("replica fetch failed", "err", err, "retry_in", backoff)
		default:
			backoff = idle
		}
	}
}

// sent is what one partition's fetch asked for: its reply is applied only
// if the replica still ends at fetchOffset, in epoch, and still follows
// this leader through fp (partition.AppendReplicated checks the first two
// under the partition's lock).
type sent struct {
	fp          *followed
	fetchOffset int64
}

// round truncates what needs it, then fetches once. Records appended are
// fsynced before the next fetch when acks wait for fsync: a follower's
// fetch offset is what the leader counts it for, so it reports only what
// is durable (an acknowledged record survives a power loss of every node).
// When every partition is held back, it fetches nothing and returns how
// long until the first may go again.
func (f *Fetcher) round(ctx context.Context, parts map[Key]*followed) (time.Duration, error) {
	now := time.Now()
	var next time.Time // the earliest a held-back partition may go again
	for k, fp := range parts {
		if now.Before(fp.retryAt) {
			if next.IsZero() || fp.retryAt.Before(next) {
				next = fp.retryAt
			}
			continue
		}
		if fp.truncate {
			// One partition's trouble (a leader not ready for its epoch
			// yet) must not stop the others: it is held back and retried.
			if err := f.truncate(ctx, k, fp); err != nil {
				if ctx.Err() != nil {
					return 0, err
				}
				lvl := slog.LevelDebug
				if errors.Is(err, partition.ErrBelowHighWatermark) {
					lvl = slog.LevelError // the leader lacks committed records: never follow it down
				}
				f.log.Log(ctx, lvl, "truncation check failed", "topic", k.Topic, "partition", k.Partition, "err", err)
				fp.retryAt = now.Add(partitionBackoff)
				if next.IsZero() || fp.retryAt.Before(next) {
					next = fp.retryAt
				}
			}
		}
	}
	want := map[Key]kmsg.FetchRequestTopicPartition{}
	asked := map[Key]sent{}
	allowance, refill := int32(-1), time.Time{}
	f.mu.Lock()
	throttle := f.throttle
	f.mu.Unlock()
	for _, fp := range parts {
		if fp.throttled && throttle != nil {
			allowance, refill = throttle.allowance(now, f.maxBytes)
			break
		}
	}
	for k, fp := range parts {
		if fp.truncate || now.Before(fp.retryAt) {
			continue
		}
		if fp.throttled && allowance == 0 {
			if next.IsZero() || refill.Before(next) {
				next = refill
			}
			continue
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = k.Partition
		rp.CurrentLeaderEpoch = fp.epoch
		rp.FetchOffset = fp.p.LogEndOffset()
		rp.LastFetchedEpoch = fp.p.LatestEpoch()
		rp.LogStartOffset = fp.p.LogStartOffset()
		rp.PartitionMaxBytes = f.maxBytes
		if fp.throttled && allowance > 0 {
			rp.PartitionMaxBytes = allowance
		}
		want[k] = rp
		asked[k] = sent{fp: fp, fetchOffset: rp.FetchOffset}
	}
	if len(want) == 0 {
		if next.IsZero() {
			return 0, nil // only truncations this round: fetch next round
		}
		return time.Until(next), nil
	}
	req := f.sess.request(want)
	req.ReplicaID = f.self
	req.MaxWaitMillis = int32(f.maxWait.Milliseconds())
	req.MinBytes = 1
	req.MaxBytes = f.maxBytes
	rctx, cancel := context.WithTimeout(ctx, f.maxWait+10*time.Second)
	defer cancel()
	kresp, err := f.client.Request(rctx, req)
	if err != nil {
		f.sess.failed()
		return 0, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		err := kerr.ErrorForCode(resp.ErrorCode)
		if f.sess.rejected(err) {
			return 0, nil // the leader lost our session: a full fetch opens another at once
		}
		f.sess.failed()
		return 0, err
	}
	f.sess.answered(req, resp.SessionID, want)
	var appended []*partition.Partition
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			k := Key{rt.Topic, rp.Partition}
			s, ok := asked[k]
			if !ok {
				continue
			}
			delete(asked, k) // a partition answered twice is applied once
			if !f.current(k, s.fp) {
				continue // unfollowed or re-followed meanwhile: the reply is stale
			}
			if s.fp.throttled && throttle != nil {
				throttle.spend(len(rp.RecordBatches))
			}
			n, err := f.apply(k, s, rp)
			if err != nil {
				f.log.Warn("replica fetch", "topic", k.Topic, "partition", k.Partition, "err", err)
				if !s.fp.truncate {
					s.fp.retryAt = time.Now().Add(partitionBackoff)
				}
			}
			if n {
				s.fp.p.RequestFlush()
				appended = append(appended, s.fp.p)
			}
		}
	}
	for _, p := range appended {
		if err := p.FlushReplicated(ctx); err != nil {
			return 0, fmt.Errorf("replication: fsync %s-%d: %w", p.Topic(), p.ID(), err)
		}
	}
	return 0, nil
}

// current reports whether fp is still how this fetcher follows k.
func (f *Fetcher) current(k Key, fp *followed) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[k] == fp
}

// apply applies one partition's reply; it reports whether records were
// appended.
func (f *Fetcher) apply(k Key, s sent, rp kmsg.FetchResponseTopicPartition) (bool, error) {
	fp := s.fp
	switch err := kerr.ErrorForCode(rp.ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.OffsetOutOfRange):
		// Below the leader's log start (retention moved it): start again
		// where the leader's log starts. Above its end: this replica
		// holds a tail the leader lacks; find the divergence by epoch
		// again — never by cutting to what the leader says is committed.
		if fp.p.LogEndOffset() < rp.LogStartOffset {
			return false, fp.p.ResetTo(rp.LogStartOffset)
		}
		f.markTruncate(k)
		return false, err
	default:
		return false, err // not leader, fenced: metadata will move us
	}
	if de := rp.DivergingEpoch; de.Epoch >= 0 && de.EndOffset >= 0 {
		// The leader found our last fetched epoch diverging (KIP-320,
		// KIP-595): cut to where the leader's copy of the largest epoch
		// we share ends; the next fetch carries the new last epoch and
		// the leader checks again, until the logs agree.
		if target, _ := divergence(fp.p, de.Epoch, de.EndOffset); target < fp.p.LogEndOffset() {
			f.log.Info("truncating divergent tail", "topic", k.Topic, "partition", k.Partition, "from", fp.p.LogEndOffset(), "to", target, "diverging_epoch", de.Epoch)
			return false, fp.p.TruncateTo(target)
		}
		return false, nil
	}
	n := false
	if len(rp.RecordBatches) >= 8 {
		// The leader's log start is inside its first batch (DeleteRecords
		// cut there) and this replica's log is empty at that start: it
		// starts at the batch instead, as Kafka's followers do
		// (truncateFullyAndStartAt), and raises its log start back below.
		base := int64(binary.BigEndian.Uint64(rp.RecordBatches))
		if base < s.fetchOffset && s.fetchOffset == fp.p.LogStartOffset() && s.fetchOffset == fp.p.LogEndOffset() {
			if err := fp.p.ResetTo(base); err != nil {
				return false, err
			}
			s.fetchOffset = base
		}
	}
	if len(rp.RecordBatches) > 0 {
		if _, err := fp.p.AppendReplicated(rp.RecordBatches, s.fetchOffset, fp.epoch); err != nil {
			if errors.Is(err, partition.ErrStaleFetch) {
				return false, nil
			}
			f.markTruncate(k)
			return false, err
		}
		n = true
	}
	fp.p.SetHighWatermark(min(rp.HighWatermark, fp.p.LogEndOffset()))
	if rp.LogStartOffset > fp.p.LogStartOffset() {
		// DeleteRecords on the leader: delete here too (up to our HW).
		if err := fp.p.FollowLogStart(rp.LogStartOffset); err != nil {
			return n, err
		}
	}
	return n, nil
}

func (f *Fetcher) markTruncate(k Key) {
	f.mu.Lock()
	if cur := f.parts[k]; cur != nil {
		cur.truncate = true
	}
	f.mu.Unlock()
}

// maxTruncationRounds bounds the OffsetForLeaderEpoch exchange; each round
// moves to an older epoch, so real logs converge in a few.
const maxTruncationRounds = 64

// truncate finds where this replica's log diverges from the leader's and
// cuts it there, then lets fetching start.
func (f *Fetcher) truncate(ctx context.Context, k Key, fp *followed) error {
	ask := func(ctx context.Context, epoch int32) (int32, int64, error) {
		return f.endOffsetForEpoch(ctx, k, fp.epoch, epoch)
	}
	if err := truncateToCommon(ctx, fp.p, ask, f.log.With("topic", k.Topic, "partition", k.Partition)); err != nil {
		return err
	}
	f.mu.Lock()
	if cur := f.parts[k]; cur == fp {
		cur.truncate = false
	}
	f.mu.Unlock()
	fp.truncate = false
	return nil
}

// epochAsker asks the leader for the largest epoch it has at or below
// epoch and the offset where that epoch ends in its log.
type epochAsker func(ctx context.Context, epoch int32) (leaderEpoch int32, endOffset int64, err error)

// truncateToCommon cuts p where its log leaves the leader's (KIP-101,
// KIP-279): ask where the leader's copy of our latest epoch ends; when the
// leader answers an older epoch that we lack too, cut to our own end of
// the largest epoch at or below it and ask again about that one, until
// both name the same epoch.
func truncateToCommon(ctx context.Context, p *partition.Partition, ask epochAsker, log *slog.Logger) error {
	for range maxTruncationRounds {
		mine, end := p.LatestEpoch(), p.LogEndOffset()
		if mine == partition.UndefinedEpoch {
			return nil // nothing with an epoch: nothing can diverge
		}
		le, lend, err := ask(ctx, mine)
		if err != nil {
			return err
		}
		target, done := end, true
		if le == partition.UndefinedEpoch || lend < 0 {
			// The leader has no epoch this old: keep what is committed.
			target = min(end, p.HighWatermark())
		} else {
			// Lacking the leader's epoch, our log after our largest
			// epoch below it may still diverge: ask about that one.
			target, done = divergence(p, le, lend)
		}
		if target < end {
			log.Info("truncating divergent tail", "from", end, "to", target, "leader_epoch", le)
			if err := p.TruncateTo(target); err != nil {
				return err
			}
		}
		if done || (p.LatestEpoch() == mine && p.LogEndOffset() == end) {
			return nil
		}
	}
	return fmt.Errorf("replication: no common epoch with the leader after %d rounds", maxTruncationRounds)
}

// divergence is where p's log leaves a leader whose copy of epoch le ends
// at lend: the smaller of that and p's own end of le (or of the largest
// epoch it has below le), and whether p holds le itself — if not, its log
// before that point may still diverge in older epochs.
func divergence(p *partition.Partition, le int32, lend int64) (int64, bool) {
	end := p.LogEndOffset()
	own, ownEnd := p.EndOffsetForEpoch(le)
	if own == partition.UndefinedEpoch {
		// Every epoch of ours is newer than the leader's: nothing past
		// the leader's end can be shared.
		own, ownEnd = le, end
	}
	return min(end, lend, ownEnd), own == le
}

// endOffsetForEpoch is one OffsetForLeaderEpoch exchange with the leader.
func (f *Fetcher) endOffsetForEpoch(ctx context.Context, k Key, current, epoch int32) (int32, int64, error) {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.Version = 3
	req.ReplicaID = f.self
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = k.Partition, current, epoch
	req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: k.Topic, Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{rp}}}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	kresp, err := f.client.Request(rctx, req)
	if err != nil {
		return 0, 0, err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return 0, 0, fmt.Errorf("replication: malformed OffsetForLeaderEpoch response")
	}
	r := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(r.ErrorCode); err != nil {
		return 0, 0, err
	}
	return r.LeaderEpoch, r.EndOffset, nil
}
