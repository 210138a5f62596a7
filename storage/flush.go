package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// The flusher is a group commit: appenders write and return; whoever needs
// durability calls WaitDurable, which asks the flusher goroutine for a flush
// and waits. One fsync covers every batch written before it started, so many
// concurrent waiters share it.

func (l *Log) requestFlush() {
	select {
	case l.flushReq <- struct{}{}:
	default: // a flush is already asked for; it will cover us
	}
}

func (l *Log) runFlusher() {
	defer l.wg.Done()
	for {
		select {
		case <-l.stop:
			return
		case <-l.flushReq:
			l.flushOnce()
		}
	}
}

// flushOnce fsyncs the rolled segments and the active one without holding mu,
// so appends go on meanwhile, then publishes the new durable offset.
func (l *Log) flushOnce() {
	l.mu.Lock()
	if l.closed || l.failed != nil {
		l.mu.Unlock()
		l.durable.Broadcast() // waiters must see the failure
		return
	}
	target, gen := l.leo.Load(), l.gen.Load()
	rolled := slices.Clone(l.unflushed)
	active := l.active()
	held := append(slices.Clone(rolled), active)
	for _, s := range held {
		s.refs.Add(1) // mu held: none of them has been released
	}
	l.mu.Unlock()

	var err error
	for _, s := range rolled {
		if err = s.sync(true); err != nil {
			break
		}
	}
	if err == nil {
		err = active.sync(false)
	}
	for _, s := range held {
		s.release()
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	defer l.notifyChange()
	defer l.durable.Broadcast()
	if err != nil {
		l.syncFailedLocked(err)
		return
	}
	if l.gen.Load() != gen {
		return // truncated meanwhile: the next flush decides
	}
	if target > l.flushed.Load() {
		l.flushed.Store(target)
	}
	if len(rolled) == 0 {
		return
	}
	l.unflushed = slices.DeleteFunc(l.unflushed, func(s *segment) bool { return slices.Contains(rolled, s) })
	if len(l.unflushed) > 0 {
		l.recoveryPoint = l.unflushed[0].base
	} else {
		l.recoveryPoint = active.base
	}
	if err := writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(false)); err != nil {
		l.log.Warn("write recovery checkpoint", "err", err)
	}
}

// syncFailedLocked handles a failed fsync. After one, the kernel may have
// dropped the dirty pages and will not say so again, so the bytes written
// since the last good flush cannot be trusted: they are cut away, their
// waiters get ErrNotDurable, and the log goes on from the durable offset.
func (l *Log) syncFailedLocked(err error) {
	durable := max(l.flushed.Load(), l.start.Load())
	l.log.Error("fsync failed; cutting the log back to its durable offset",
		"durable_offset", durable, "log_end_offset", l.leo.Load(), "err", err)
	if durable >= l.leo.Load() {
		return
	}
	if durable <= l.start.Load() {
		err = l.resetLocked(durable)
	} else {
		err = l.truncateLocked(durable)
	}
	if err != nil && l.failed == nil {
		_ = l.faultLocked(err)
	}
}

// Truncated reports whether batches at or below r's offsets were cut from
// the log since r was appended (so an offset of r may now hold something
// else).
func (l *Log) Truncated(r AppendResult) bool {
	if l.gen.Load() == r.gen {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.truncs) == 0 || l.truncs[0].gen > r.gen+1 {
		return true // history lost: assume the worst
	}
	for _, t := range l.truncs {
		if t.gen > r.gen && t.at <= r.LastOffset {
			return true
		}
	}
	return false
}

// errPending means a durability wait must go on.
var errPending = errors.New("storage: pending")

// WaitDurable returns once every offset of r is fsynced, or ErrNotDurable if
// they were truncated away first (a failed fsync, a follower truncation).
func (l *Log) WaitDurable(ctx context.Context, r AppendResult) error {
	for {
		ch := l.durable.Wait()
		if err := l.durableState(r); err != errPending {
			return err
		}
		l.requestFlush()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.stop:
			if err := l.durableState(r); err != errPending {
				return err
			}
			return ErrClosed
		}
	}
}

// Flush fsyncs everything appended so far.
func (l *Log) Flush(ctx context.Context) error {
	l.mu.Lock()
	r := AppendResult{LastOffset: l.leo.Load() - 1, gen: l.gen.Load()}
	l.mu.Unlock()
	return l.WaitDurable(ctx, r)
}

func (l *Log) durableState(r AppendResult) error {
	// Load flushed before gen: a flush seen here either predates any
	// truncation the gen check misses or the gen check sees it.
	flushed := l.flushed.Load()
	if l.gen.Load() != r.gen {
		// Truncations and flushes both happen under mu: read them together.
		l.mu.Lock()
		lost := len(l.truncs) == 0 || l.truncs[0].gen > r.gen+1
		for _, t := range l.truncs {
			if t.gen > r.gen && t.at <= r.LastOffset {
				lost = true
			}
		}
		flushed = l.flushed.Load()
		l.mu.Unlock()
		if lost {
			return fmt.Errorf("%w: offsets %d..%d in %s", ErrNotDurable, r.BaseOffset, r.LastOffset, l.dir)
		}
	}
	if flushed > r.LastOffset {
		return nil
	}
	if l.bad.Load() {
		return fmt.Errorf("%w: offsets %d..%d in %s not fsynced", ErrLogFailed, r.BaseOffset, r.LastOffset, l.dir)
	}
	return errPending
}
