package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
)

// PerfCmd is `mlog perf`: load tools like Kafka's producer/consumer perf
// tests, on franz-go.
func PerfCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "perf", Short: "Measure produce and consume throughput and latency"}
	cmd.AddCommand(perfProduceCmd(), perfConsumeCmd())
	return cmd
}

type perfFlags struct {
	brokers    string
	topic      string
	numRecords int
	recordSize int
	throughput int
	acks       string
	timeout    time.Duration
}

func (f *perfFlags) common(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.brokers, "brokers", "127.0.0.1:9094", "comma-separated bootstrap brokers")
	fl.StringVar(&f.topic, "topic", "mlog-perf", "topic")
	fl.IntVar(&f.numRecords, "num-records", 1_000_000, "records to produce or consume")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long")
}

func perfProduceCmd() *cobra.Command {
	f := &perfFlags{}
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records as fast as allowed and report throughput and latency",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runPerfProduce(cmd.OutOrStdout(), f) },
	}
	f.common(cmd)
	cmd.Flags().IntVar(&f.recordSize, "record-size", 1024, "bytes per record value")
	cmd.Flags().IntVar(&f.throughput, "throughput", -1, "records per second to aim for; -1 for no limit")
	cmd.Flags().StringVar(&f.acks, "acks", "all", "0, 1, or all (-1)")
	return withEnv(cmd)
}

func perfConsumeCmd() *cobra.Command {
	f := &perfFlags{}
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Consume records from the start of a topic and report throughput",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return runPerfConsume(cmd.OutOrStdout(), f) },
	}
	f.common(cmd)
	return withEnv(cmd)
}

func perfContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stop() }
}

func ackOpts(acks string) ([]kgo.Opt, error) {
	switch strings.ToLower(acks) {
	case "all", "-1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
	case "1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "0":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	}
	return nil, fmt.Errorf("--acks %q: want 0, 1 or all", acks)
}

// latencies collects per-record latencies for percentiles.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return "no latencies"
	}
	slices.Sort(l.d)
	p := func(q float64) float64 { return float64(l.d[int(q*float64(len(l.d)-1))]) / 1e6 }
	return fmt.Sprintf("latency p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms", p(0.50), p(0.95), p(0.99), float64(l.d[len(l.d)-1])/1e6)
}

func rate(n, bytes int64, d time.Duration) string {
	s := d.Seconds()
	return fmt.Sprintf("%.0f records/s (%.2f MB/s)", float64(n)/s, float64(bytes)/s/1e6)
}

func runPerfProduce(out io.Writer, f *perfFlags) error {
	if f.numRecords < 1 || f.recordSize < 0 {
		return errors.New("--num-records must be positive and --record-size not negative")
	}
	opts, err := ackOpts(f.acks)
	if err != nil {
		return err
	}
	opts = append(opts, kgo.SeedBrokers(strings.Split(f.brokers, ",")...), kgo.MetadataMinAge(250*time.Millisecond), kgo.DefaultProduceTopic(f.topic),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(100_000), kgo.AllowAutoTopicCreation())
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := perfContext(f.timeout)
	defer cancel()

	value := make([]byte, f.recordSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	var (
		lat           latencies
		mu            sync.Mutex
		acked, failed int64
		firstErr      error
		wg            sync.WaitGroup
		start         = time.Now()
		lastAcked     int64
		lastTick      = start
		tick          = time.NewTicker(time.Second)
		recordBytes   = int64(f.recordSize)
	)
	defer tick.Stop()
	report := func(now time.Time) {
		mu.Lock()
		n, fl := acked, failed
		mu.Unlock()
		fmt.Fprintf(out, "%d records acked, %d failed, %s\n", n, fl, rate(n-lastAcked, (n-lastAcked)*recordBytes, now.Sub(lastTick)))
		lastAcked, lastTick = n, now
	}
	for i := 0; i < f.numRecords && ctx.Err() == nil; i++ {
		if f.throughput > 0 {
			if ahead := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(f.throughput))); ahead > 0 {
				select {
				case <-time.After(ahead):
				case <-ctx.Done():
				}
			}
		}
		select {
		case now := <-tick.C:
			report(now)
		default:
		}
		sent := time.Now()
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			acked++
			lat.add(time.Since(sent))
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case now := <-tick.C:
			report(now)
		case <-done:
			waiting = false
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(out, "%d records sent, %s, %s\n", acked, rate(acked, acked*recordBytes, elapsed), lat.summary())
	if failed > 0 {
		return fmt.Errorf("%d of %d records failed; first error: %w", failed, f.numRecords, firstErr)
	}
	return ctx.Err()
}

func runPerfConsume(out io.Writer, f *perfFlags) error {
	if f.numRecords < 1 {
		return errors.New("--num-records must be positive")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(f.brokers, ",")...), kgo.MetadataMinAge(250*time.Millisecond), kgo.ConsumeTopics(f.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return err
	}
	defer cl.Close()
	ctx, cancel := perfContext(f.timeout)
	defer cancel()
	var (
		lat       latencies
		n, bytes  int64
		start     = time.Now()
		lastN     int64
		lastBytes int64
		lastTick  = start
	)
	for n < int64(f.numRecords) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch %s[%d]: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		now := time.Now()
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Value) + len(r.Key))
			lat.add(now.Sub(r.Timestamp))
		})
		if now.Sub(lastTick) >= time.Second {
			fmt.Fprintf(out, "%d records consumed, %s\n", n, rate(n-lastN, bytes-lastBytes, now.Sub(lastTick)))
			lastN, lastBytes, lastTick = n, bytes, now
		}
	}
	elapsed := time.Since(start)
	fmt.Fprintf(out, "%d records consumed, %s, end-to-end %s\n", n, rate(n, bytes, elapsed), lat.summary())
	if n < int64(f.numRecords) {
		return fmt.Errorf("consumed %d of %d records before stopping: %w", n, f.numRecords, context.Cause(ctx))
	}
	return nil
}
