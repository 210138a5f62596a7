package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// system is one log under test, as the workloads see it: a set of server
// processes, and a client for them.
type system interface {
	Name() string
	PIDs() []int // the server processes, whose CPU time is counted
	// CreateLog creates a fresh topic or stream, ready for acks from every
	// replica.
	CreateLog(ctx context.Context, name string) error
	DeleteLog(ctx context.Context, name string) error
	// NewProducer returns a pipelined producer; onAck(seq, err) is called
	// once per Send, seq counting Sends from 0, from one goroutine. With
	// lowLatency it is set up as users set a producer up for latency at a
	// modest rate rather than for throughput (kgo: no linger).
	NewProducer(ctx context.Context, name string, lowLatency bool, onAck func(seq int, err error)) (producer, error)
	// NewConsumer reads the log from its start, calling onRecord with each
	// value in order from one goroutine until Close.
	NewConsumer(ctx context.Context, name string, onRecord func([]byte)) (consumer, error)
	Alive() error // every server process still running
	Close()
}

type producer interface {
	Send(value []byte) // blocks while the client's window is full
	Close()
}

type consumer interface {
	Close() error
}

// newPool returns n records of size bytes drawn from a ChaCha8 stream
// seeded with seed: incompressible, no two alike, the same bytes for every
// system.
func newPool(seed uint64, n, size int) [][]byte {
	buf := make([]byte, n*size)
	rng := rand.NewChaCha8([32]byte{0: byte(seed), 1: byte(seed >> 8), 2: byte(seed >> 16), 3: byte(seed >> 24), 31: byte(size)})
	_, _ = rng.Read(buf)
	recs := make([][]byte, n)
	for i := range recs {
		recs[i] = buf[i*size : (i+1)*size : (i+1)*size]
	}
	return recs
}

// warmup is what every run sends first, untimed, so that connections,
// metadata and leader look-ups are done before the clock starts. Its first
// 8 bytes are zero, which the end-to-end consumer takes as "not timed".
func warmup(size int) []byte { return make([]byte, size) }

type produceResult struct {
	records int
	bytes   int64
	elapsed time.Duration // first send to last ack
	acks    []time.Duration
	cpuSec  float64 // utime+stime of every server process over the run
}

// runProduce sends every record of pool pipelined and times each from Send
// to its ack.
func runProduce(ctx context.Context, sys system, name string, pool [][]byte, clk float64) (produceResult, error) {
	n := len(pool)
	base := time.Now()
	sentAt := make([]time.Duration, n+1) // by seq; 0 is the warm-up
	ackAt := make([]time.Duration, n+1)
	var acked atomic.Int64
	warm, all, failed := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var failOnce sync.Once
	var failErr error
	onAck := func(seq int, err error) {
		if err == nil && (seq < 0 || seq > n) {
			err = fmt.Errorf("ack for sequence %d of %d sent", seq, n+1)
		}
		if err != nil {
			failOnce.Do(func() { failErr = err; close(failed) })
			return
		}
		ackAt[seq] = time.Since(base)
		switch acked.Add(1) {
		case 1:
			close(warm)
		case int64(n + 1):
			close(all)
		}
	}
	p, err := sys.NewProducer(ctx, name, false, onAck)
	if err != nil {
		return produceResult{}, err
	}
	defer p.Close()
	wait := func(ch chan struct{}) error {
		select {
		case <-ch:
			return nil
		case <-failed:
			return failErr
		case <-ctx.Done():
			return fmt.Errorf("%d of %d acked: %w", acked.Load(), n+1, ctx.Err())
		}
	}
	p.Send(warmup(len(pool[0])))
	if err := wait(warm); err != nil {
		return produceResult{}, fmt.Errorf("warm-up record: %w", err)
	}
	pids := sys.PIDs()
	before, err := settledCPUTicks(ctx, pids)
	if err != nil {
		return produceResult{}, err
	}
	start := time.Since(base)
	for i, v := range pool {
		sentAt[i+1] = time.Since(base)
		p.Send(v)
		if i%4096 == 0 && ctx.Err() != nil {
			break
		}
	}
	if err := wait(all); err != nil {
		return produceResult{}, err
	}
	res := produceResult{records: n, bytes: int64(n) * int64(len(pool[0])), acks: make([]time.Duration, n)}
	last := start
	for i := range n {
		res.acks[i] = ackAt[i+1] - sentAt[i+1]
		last = max(last, ackAt[i+1])
	}
	res.elapsed = last - start
	after, err := settledCPUTicks(ctx, pids)
	if err != nil {
		return produceResult{}, err
	}
	res.cpuSec = float64(after-before) / clk
	return res, nil
}

type consumeResult struct {
	records int
	bytes   int64
	elapsed time.Duration // consumer creation to last record
}

// runConsume reads the warm-up record and then pool back from the start
// of the log and checks each value, in order, against what was sent.
func runConsume(ctx context.Context, sys system, name string, pool [][]byte) (consumeResult, error) {
	n := len(pool)
	var got int
	var bytesRead int64
	var bad error
	done := make(chan struct{})
	wu := warmup(len(pool[0]))
	onRecord := func(v []byte) {
		if got > n || bad != nil {
			return
		}
		want := wu
		if got > 0 {
			want = pool[got-1]
		}
		if !bytes.Equal(v, want) {
			bad = fmt.Errorf("record %d: %d bytes differ from the %d sent", got, len(v), len(want))
			close(done)
			return
		}
		got++
		bytesRead += int64(len(v))
		if got == n+1 {
			close(done)
		}
	}
	start := time.Now()
	c, err := sys.NewConsumer(ctx, name, onRecord)
	if err != nil {
		return consumeResult{}, err
	}
	var waitErr error
	select {
	case <-done:
	case <-ctx.Done():
		waitErr = ctx.Err()
	}
	elapsed := time.Since(start)
	cerr := c.Close()
	switch {
	case bad != nil:
		return consumeResult{}, bad
	case waitErr != nil:
		return consumeResult{}, errors.Join(fmt.Errorf("read %d of %d records: %w", got, n+1, waitErr), cerr)
	case cerr != nil:
		return consumeResult{}, cerr
	}
	return consumeResult{records: n, bytes: bytesRead - int64(len(wu)), elapsed: elapsed}, nil
}

type e2eResult struct {
	latencies []time.Duration
	rate      float64 // records/s actually sent
}

// runE2E sends copies of pool's records at rate per second for dur, each
// stamped in its first 8 bytes with the wall clock at Send, while a
// consumer started before it measures how long each took to arrive.
func runE2E(ctx context.Context, sys system, name string, pool [][]byte, rate int, dur time.Duration) (e2eResult, error) {
	n := int(float64(rate) * dur.Seconds())
	lat := make([]time.Duration, 0, n)
	warm, done := make(chan struct{}), make(chan struct{})
	warmSeen := false
	onRecord := func(v []byte) {
		if len(v) < 8 || len(lat) == n {
			return
		}
		ts := int64(binary.LittleEndian.Uint64(v))
		if ts == 0 {
			if !warmSeen {
				warmSeen = true
				close(warm)
			}
			return
		}
		lat = append(lat, time.Duration(time.Now().UnixNano()-ts))
		if len(lat) == n {
			close(done)
		}
	}
	c, err := sys.NewConsumer(ctx, name, onRecord)
	if err != nil {
		return e2eResult{}, err
	}
	closed := false
	closeConsumer := func() error {
		if closed {
			return nil
		}
		closed = true
		return c.Close()
	}
	defer closeConsumer()

	var sendErr atomic.Pointer[error]
	p, err := sys.NewProducer(ctx, name, true, func(_ int, err error) {
		if err != nil {
			sendErr.CompareAndSwap(nil, &err)
		}
	})
	if err != nil {
		return e2eResult{}, err
	}
	defer p.Close()
	p.Send(warmup(len(pool[0])))
	select {
	case <-warm:
	case <-ctx.Done():
		return e2eResult{}, fmt.Errorf("warm-up record not consumed: %w", ctx.Err())
	}

	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < n; {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		// Send every record that is due, catching up after a late wake-up.
		for due := int(time.Since(start)/interval) + 1; i < n && i < due; i++ {
			v := slices.Clone(pool[i%len(pool)])
			binary.LittleEndian.PutUint64(v, uint64(time.Now().UnixNano()))
			p.Send(v)
		}
		if ctx.Err() != nil {
			return e2eResult{}, ctx.Err()
		}
	}
	sent := time.Since(start)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case <-done:
	case <-wctx.Done():
	}
	cerr := closeConsumer()
	if e := sendErr.Load(); e != nil {
		return e2eResult{}, *e
	}
	if len(lat) < n {
		return e2eResult{}, errors.Join(fmt.Errorf("consumed %d of %d records", len(lat), n), cerr)
	}
	r := e2eResult{latencies: lat, rate: float64(n) / sent.Seconds()}
	if r.rate < 0.95*float64(rate) {
		fmt.Fprintf(os.Stderr, "  %s: sent at %.0f rec/s, below the %d asked for\n", sys.Name(), r.rate, rate)
	}
	return r, nil
}

// percentile is the nearest-rank q-quantile (0 < q <= 1) of d, in ms.
func percentile(d []time.Duration, q float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// median of the per-run values.
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
