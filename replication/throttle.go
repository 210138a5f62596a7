package replication

import (
	"sync"
	"time"
)

// Throttle bounds the bytes per second a broker's throttled replicas (those
// a reassignment is adding) fetch, over all its fetchers together: Kafka's
// follower.replication.throttled.rate, per broker. It is a token bucket
// holding at most a second's worth; a fetch may overdraw it by one batch
// (the first batch is always whole), and then waits the debt off.
type Throttle struct {
	mu       sync.Mutex
	rate     int64 // bytes per second; 0: no bound
	tokens   float64
	refilled time.Time
}

// SetRate sets the bound (0 lifts it) and reports whether it changed.
func (t *Throttle) SetRate(bytesPerSec int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate == bytesPerSec {
		return false
	}
	t.rate = bytesPerSec
	if bytesPerSec <= 0 {
		t.tokens, t.refilled = 0, time.Time{}
	}
	return true
}

// allowance refills the bucket and returns how many bytes the throttled
// partitions may ask for now, at most max (-1: no bound), or, when none,
// when to ask again.
func (t *Throttle) allowance(now time.Time, max int32) (int32, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rate := float64(t.rate)
	if rate <= 0 {
		return -1, time.Time{}
	}
	if !t.refilled.IsZero() {
		t.tokens = min(rate, t.tokens+rate*now.Sub(t.refilled).Seconds())
	}
	t.refilled = now
	if t.tokens < 1 {
		return 0, now.Add(time.Duration((1 - t.tokens) / rate * float64(time.Second)))
	}
	return int32(min(t.tokens, float64(max))), time.Time{}
}

// spend takes n fetched bytes from the bucket.
func (t *Throttle) spend(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rate > 0 {
		t.tokens -= float64(n)
	}
}
