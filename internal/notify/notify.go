// Package notify has the one wake-everybody primitive mlog waits on instead
// of polling: long-polling fetches, producers waiting for fsync, followers
// waiting for data.
package notify

import "sync"

// Notifier wakes every waiter at once: Wait returns a channel that the next
// Broadcast closes. Take the channel before checking the condition, so a
// change between the check and the wait is not lost. The zero value is
// ready to use.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// Wait returns the channel the next Broadcast closes.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// Broadcast wakes everyone waiting. It is cheap when nobody waits.
func (n *Notifier) Broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
