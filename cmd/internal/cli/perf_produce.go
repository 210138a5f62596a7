package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// maxLatencySamples is how many latencies kafka-producer-perf-test keeps
// for its percentiles; above it every k-th record is sampled.
const maxLatencySamples = 500_000

// produceStats are kafka-producer-perf-test's Stats: totals, a window for
// the progress lines, and sampled latencies for the percentiles. Promises of
// every producer client record into it; mu guards everything.
type produceStats struct {
	mu          sync.Mutex
	start       time.Time
	count       int64 // records acknowledged
	bytes       int64 // their value bytes
	latSum      time.Duration
	latMax      time.Duration
	samples     []time.Duration
	sampleEvery int64
	completed   int64 // acknowledged or failed, for sampling
	failed      int64
	firstErr    error
	window      produceWindow
}

type produceWindow struct {
	start          time.Time
	count, bytes   int64
	latSum, latMax time.Duration
}

func newProduceStats(numRecords int64, start time.Time) *produceStats {
	every := max(1, numRecords/maxLatencySamples)
	return &produceStats{
		start:       start,
		sampleEvery: every,
		samples:     make([]time.Duration, 0, min(numRecords/every+1, maxLatencySamples+1)),
		window:      produceWindow{start: start},
	}
}

// record is one record's outcome; latency is produce-to-ack.
func (s *produceStats) record(latency time.Duration, size int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completed++
	if err != nil {
		s.failed++
		if s.firstErr == nil {
			s.firstErr = err
		}
		return
	}
	s.count++
	s.bytes += int64(size)
	s.latSum += latency
	s.latMax = max(s.latMax, latency)
	if s.completed%s.sampleEvery == 0 {
		s.samples = append(s.samples, latency)
	}
	w := &s.window
	w.count++
	w.bytes += int64(size)
	w.latSum += latency
	w.latMax = max(w.latMax, latency)
}

// progress is the line for the window since the last one, which it
// starts afresh: kafka-producer-perf-test's periodic line.
func (s *produceStats) progress(now time.Time) string {
	s.mu.Lock()
	w := s.window
	s.window = produceWindow{start: now}
	s.mu.Unlock()
	secs := now.Sub(w.start).Seconds()
	return fmt.Sprintf("%d records sent, %.1f records/sec (%.2f MB/sec), %.1f ms avg latency, %.1f ms max latency.",
		w.count, float64(w.count)/secs, float64(w.bytes)/mib/secs, ms(avg(w.latSum, w.count)), ms(w.latMax))
}

// final is kafka-producer-perf-test's closing line over the whole run.
// Percentiles are printed to 0.01 ms, where Kafka's tool rounds to whole
// milliseconds.
func (s *produceStats) final(end time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	slices.Sort(s.samples)
	pct := func(q float64) float64 {
		if len(s.samples) == 0 {
			return 0
		}
		return ms(s.samples[min(int(q*float64(len(s.samples))), len(s.samples)-1)])
	}
	secs := end.Sub(s.start).Seconds()
	return fmt.Sprintf("%d records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency, %.2f ms 50th, %.2f ms 95th, %.2f ms 99th, %.2f ms 99.9th.",
		s.count, float64(s.count)/secs, float64(s.bytes)/mib/secs, ms(avg(s.latSum, s.count)), ms(s.latMax),
		pct(0.5), pct(0.95), pct(0.99), pct(0.999))
}

func avg(sum time.Duration, n int64) time.Duration {
	if n == 0 {
		return 0
	}
	return sum / time.Duration(n)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runPerfProduce(out, errOut io.Writer, f *produceFlags) error {
	ctx, cancel := perfContext(f.timeout)
	defer cancel()

	base, err := f.baseOpts()
	if err != nil {
		return err
	}
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return err
	}
	defer admCl.Close()
	if err := perfPing(ctx, admCl, &f.perfCommon); err != nil {
		return err
	}
	adm := kadm.NewClient(admCl)
	setupCtx, setupCancel := context.WithTimeout(ctx, perfSetupTimeout)
	partitions, created, err := ensurePerfTopic(setupCtx, adm, f.topic, f.partitions, f.replicationFactor)
	setupCancel()
	if err != nil {
		return err
	}
	how := "created"
	if !created {
		how = "existing"
		if f.partitions > 0 && f.partitions != partitions {
			how += fmt.Sprintf(", --partitions %d not applied", f.partitions)
		}
	}
	fmt.Fprintf(errOut, "perf produce: %d records to %q (%d partitions, %s) from %d producers, acks %s, compression %s; values: %s\n",
		f.numRecords, f.topic, partitions, how, f.producers, f.acks, f.compression, f.payload.describe(f.seed, f.payloadFile))
	storedBefore, _, storedErr := storedBytes(ctx, adm, f.topic, partitions)

	wire := &wireBytes{}
	clients := make([]*kgo.Client, f.producers)
	for p := range clients {
		if clients[p], err = kgo.NewClient(append(slices.Clone(f.clientOpts), kgo.WithHooks(wire))...); err != nil {
			for _, cl := range clients[:p] {
				cl.Close()
			}
			return err
		}
	}

	start := time.Now()
	stats := newProduceStats(f.numRecords, start)
	var producers sync.WaitGroup
	first := int64(0)
	for p, cl := range clients {
		n := f.numRecords / int64(f.producers)
		if int64(p) < f.numRecords%int64(f.producers) {
			n++
		}
		from := first
		producers.Go(func() { produceShare(ctx, cl, f, from, n, stats) })
		first += n
	}
	done := make(chan struct{})
	var reporter sync.WaitGroup
	reporter.Go(func() {
		tick := time.NewTicker(perfReportEvery)
		defer tick.Stop()
		for {
			select {
			case now := <-tick.C:
				fmt.Fprintln(out, stats.progress(now))
			case <-done:
				return
			}
		}
	})
	producers.Wait()
	end := time.Now()
	close(done)
	reporter.Wait()
	for _, cl := range clients {
		cl.Close()
	}

	fmt.Fprintln(out, stats.final(end))
	stats.mu.Lock()
	acked := stats.count
	stats.mu.Unlock()
	// franz-go may run the batch hook just after the records' promises.
	wire.waitRecords(acked, 5*time.Second)
	fmt.Fprintln(out, wire.summary())
	// The run's context may have expired; the brokers still know the sizes.
	afterCtx, afterCancel := context.WithTimeout(context.Background(), perfSetupTimeout)
	defer afterCancel()
	storedAfter, replicas, err := storedBytes(afterCtx, adm, f.topic, partitions)
	switch {
	case errors.Is(storedErr, errLogDirsNotServed) || errors.Is(err, errLogDirsNotServed):
		fmt.Fprintln(out, "bytes stored: not reported by the broker")
	case storedErr != nil:
		fmt.Fprintf(out, "bytes stored: not reported (DescribeLogDirs before the run: %v)\n", storedErr)
	case err != nil:
		fmt.Fprintf(out, "bytes stored: not reported (DescribeLogDirs after the run: %v)\n", err)
	default:
		grew := storedAfter - storedBefore
		fmt.Fprintf(out, "bytes stored: %d (%.2f MB) growth of the topic's logs over %d partition replicas\n", grew, float64(grew)/mib, replicas)
	}

	stats.mu.Lock()
	acked, failed, firstErr := stats.count, stats.failed, stats.firstErr
	stats.mu.Unlock()
	switch {
	case ctx.Err() != nil && acked < f.numRecords:
		return fmt.Errorf("%d of %d records acknowledged before stopping (--timeout %s): %w", acked, f.numRecords, f.timeout, context.Cause(ctx))
	case failed > 0:
		return fmt.Errorf("%d of %d records failed; first error: %w", failed, f.numRecords, firstErr)
	}
	return nil
}

// produceShare produces records first to first+n-1 of the run from one
// client, at --throughput divided among the producers, and returns when
// every record has its outcome.
func produceShare(ctx context.Context, cl *kgo.Client, f *produceFlags, first, n int64, stats *produceStats) {
	var perSecond float64
	if f.throughput > 0 {
		perSecond = float64(f.throughput) / float64(f.producers)
	}
	var promises sync.WaitGroup
	start := time.Now()
	for k := int64(0); k < n && ctx.Err() == nil; k++ {
		if perSecond > 0 {
			if ahead := time.Until(start.Add(time.Duration(float64(k) / perSecond * float64(time.Second)))); ahead > 0 {
				t := time.NewTimer(ahead)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					continue // the loop condition ends it
				}
			}
		}
		value := f.payload.value(first + k)
		promises.Add(1)
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			stats.record(time.Since(sent), len(value), err)
			promises.Done()
		})
	}
	promises.Wait()
}
