package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaTime is kafka-consumer-perf-test's start.time and end.time:
// yyyy-MM-dd HH:mm:ss:SSS, which Go's layouts cannot spell (they take
// fractional seconds only after a dot or a comma).
func kafkaTime(t time.Time) string {
	return fmt.Sprintf("%s:%03d", t.Format(time.DateTime), t.Nanosecond()/int(time.Millisecond))
}

// consumeHeader is kafka-consumer-perf-test's header. mlog consumes
// without a group, so rebalance.time.ms is 0 and the fetch.* columns equal
// the overall ones.
const consumeHeader = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec"

func runPerfConsume(out io.Writer, f *consumeFlags) error {
	ctx, cancel := perfContext(f.timeout)
	defer cancel()
	wire := &wireBytes{}
	base, err := f.baseOpts()
	if err != nil {
		return err
	}
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumeTopics(f.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64<<20), kgo.WithHooks(wire))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := perfPing(ctx, cl, &f.perfCommon); err != nil {
		return err
	}

	var (
		n, bytes     int64
		start        = time.Now()
		end          = start
		lastN        int64
		lastBytes    int64
		lastProgress = start
	)
	for n < f.numRecords {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return fmt.Errorf("fetch %s[%d]: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			bytes += int64(len(r.Key) + len(r.Value))
		})
		end = time.Now()
		if secs := end.Sub(lastProgress).Seconds(); secs >= perfReportEvery.Seconds() {
			fmt.Fprintf(out, "%d records consumed, %.1f records/sec (%.2f MB/sec).\n",
				n, float64(n-lastN)/secs, float64(bytes-lastBytes)/mib/secs)
			lastN, lastBytes, lastProgress = n, bytes, end
		}
	}
	secs := end.Sub(start).Seconds()
	mb := float64(bytes) / mib
	rate := func(x float64) float64 {
		if secs == 0 {
			return 0
		}
		return x / secs
	}
	fmt.Fprintln(out, consumeHeader)
	fmt.Fprintf(out, "%s, %s, %.4f, %.4f, %d, %.4f, 0, %d, %.4f, %.4f\n",
		kafkaTime(start), kafkaTime(end), mb, rate(mb), n, rate(float64(n)),
		end.Sub(start).Milliseconds(), rate(mb), rate(float64(n)))
	fmt.Fprintln(out, wire.summary())
	if n < f.numRecords {
		return fmt.Errorf("consumed %d of %d records before stopping (--timeout %s): %w", n, f.numRecords, f.timeout, context.Cause(ctx))
	}
	return nil
}
