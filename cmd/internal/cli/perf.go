package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// PerfCmd is `mlog perf`: load tools in the shape of Kafka's
// kafka-producer-perf-test and kafka-consumer-perf-test, on franz-go. They
// must not flatter: values are incompressible random bytes and no
// compression is used unless asked for, and the bytes that crossed the wire
// and the bytes the brokers stored are printed beside the records/s.
func PerfCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "perf", Short: "Measure produce and consume throughput and latency"}
	cmd.AddCommand(perfProduceCmd(), perfConsumeCmd())
	return cmd
}

const (
	// perfReportEvery is kafka-producer-perf-test's reporting interval.
	perfReportEvery = 5 * time.Second
	// perfSetupTimeout bounds reaching the cluster and readying the topic.
	perfSetupTimeout = 30 * time.Second
	// mib is what Kafka's perf tools call an MB.
	mib = 1024 * 1024
	// maxPerfRecordSize keeps the random pool (twice a record) in memory.
	maxPerfRecordSize = 64 << 20
	// describeLogDirsKey is DescribeLogDirs' Kafka API key.
	describeLogDirsKey = 35
)

// perfCommon are the flags both commands take.
type perfCommon struct {
	brokers    string
	topic      string
	numRecords int64
	timeout    time.Duration
	tls        tlsFlags
}

func (f *perfCommon) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.brokers, "brokers", "127.0.0.1:9094", "comma-separated bootstrap brokers")
	fl.StringVar(&f.topic, "topic", "mlog-perf", "topic")
	fl.Int64Var(&f.numRecords, "num-records", 1_000_000, "records to produce or consume")
	fl.DurationVar(&f.timeout, "timeout", 2*time.Minute, "give up after this long")
	f.tls.register(fl)
}

func (f *perfCommon) validate() error {
	for _, b := range f.seeds() {
		if b == "" {
			return fmt.Errorf("--brokers %q: empty broker address", f.brokers)
		}
	}
	if f.topic == "" {
		return errors.New("--topic is empty")
	}
	if f.numRecords < 1 {
		return fmt.Errorf("--num-records %d: want at least 1", f.numRecords)
	}
	if f.timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration", f.timeout)
	}
	return nil
}

// baseOpts are the seed brokers, metadata age and TLS every client of the
// command starts from.
func (f *perfCommon) baseOpts() ([]kgo.Opt, error) {
	tlsOpts, err := f.tls.opts()
	if err != nil {
		return nil, err
	}
	return append([]kgo.Opt{kgo.SeedBrokers(f.seeds()...), kgo.MetadataMinAge(250 * time.Millisecond)}, tlsOpts...), nil
}

func (f *perfCommon) seeds() []string {
	var out []string
	for _, b := range strings.Split(f.brokers, ",") {
		out = append(out, strings.TrimSpace(b))
	}
	return out
}

// produceFlags are `mlog perf produce`'s settings.
type produceFlags struct {
	perfCommon
	recordSize        int
	payloadFile       string
	seed              int64
	throughput        int64
	acks              string
	compression       string
	producers         int
	partitions        int32
	replicationFactor int16

	// Filled by check.
	payload    *payloads
	clientOpts []kgo.Opt
}

func perfProduceCmd() *cobra.Command {
	f := &produceFlags{}
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Produce records as fast as allowed and report throughput, latency and bytes",
		Long: `produce writes --num-records records to --topic from --producers clients
and prints, like kafka-producer-perf-test, a progress line every 5 s and a
final line of records/s, MB/s (MB = 2^20 bytes) and produce-to-ack latency
percentiles; then the bytes that went on the wire and the growth of the
topic's logs as the brokers report it.

Values are --record-size random bytes from a PRNG seeded with --seed
(incompressible; the same for the same seed), or the lines of
--payload-file, cycled. Compression is off unless --compression says
otherwise. The topic is created with --partitions and --replication-factor
when it does not exist. See docs/perf.md.

Every flag can also be set with an MLOG_<FLAG> environment variable
(--num-records is MLOG_NUM_RECORDS); the command line wins.`,
		Example: `  mlog perf produce --brokers 127.0.0.1:9094 --num-records 1000000 --record-size 1024
  mlog perf produce --producers 4 --partitions 12 --acks 1 --throughput 50000
  mlog perf produce --payload-file events.jsonl --compression zstd`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.check(cmd); err != nil {
				return err
			}
			return runPerfProduce(cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	f.perfCommon.register(cmd)
	fl := cmd.Flags()
	fl.IntVar(&f.recordSize, "record-size", 1024, "bytes per record value (random bytes); not with --payload-file")
	fl.StringVar(&f.payloadFile, "payload-file", "", "take record values from this file's lines, cycled, instead of random bytes")
	fl.Int64Var(&f.seed, "seed", 1, "seed of the random values: the same seed gives the same values")
	fl.Int64Var(&f.throughput, "throughput", -1, "records per second over all producers; -1 for no limit")
	fl.StringVar(&f.acks, "acks", "all", "0, 1, or all (-1)")
	fl.StringVar(&f.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fl.IntVar(&f.producers, "producers", 1, "independent producer clients; --num-records is split among them")
	fl.Int32Var(&f.partitions, "partitions", -1, "partitions of a created topic; -1 for the broker's default")
	fl.Int16Var(&f.replicationFactor, "replication-factor", -1, "replication factor of a created topic; -1 for the broker's default")
	return withEnv(cmd)
}

// check validates the flags, builds the producer options and loads or
// generates the payloads. Every error is one line naming the flag.
func (f *produceFlags) check(cmd *cobra.Command) error {
	if err := f.perfCommon.validate(); err != nil {
		return err
	}
	if f.producers < 1 {
		return fmt.Errorf("--producers %d: want at least 1", f.producers)
	}
	if int64(f.producers) > f.numRecords {
		return fmt.Errorf("--producers %d: more producers than --num-records %d", f.producers, f.numRecords)
	}
	if f.throughput == 0 || f.throughput < -1 {
		return fmt.Errorf("--throughput %d: want records per second, or -1 for no limit", f.throughput)
	}
	if f.partitions == 0 || f.partitions < -1 {
		return fmt.Errorf("--partitions %d: want at least 1, or -1 for the broker's default", f.partitions)
	}
	if f.replicationFactor == 0 || f.replicationFactor < -1 {
		return fmt.Errorf("--replication-factor %d: want at least 1, or -1 for the broker's default", f.replicationFactor)
	}
	acks, err := perfAcks(f.acks)
	if err != nil {
		return err
	}
	codec, err := perfCompression(f.compression)
	if err != nil {
		return err
	}
	if f.payloadFile != "" {
		if cmd.Flags().Changed("record-size") {
			return errors.New("--record-size and --payload-file: give one or the other")
		}
		if f.payload, err = filePayloads(f.payloadFile); err != nil {
			return err
		}
	} else {
		if f.recordSize < 1 || f.recordSize > maxPerfRecordSize {
			return fmt.Errorf("--record-size %d: want 1 to %d bytes", f.recordSize, maxPerfRecordSize)
		}
		f.payload = randomPayloads(f.seed, f.recordSize)
	}
	base, err := f.baseOpts()
	if err != nil {
		return err
	}
	f.clientOpts = append(append(acks, base...),
		kgo.DefaultProduceTopic(f.topic),
		kgo.ProducerBatchCompression(codec),
		// Kafka's default linger.ms since 4.0; batches up to franz-go's
		// 1 MB, or one record when records are larger.
		kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchMaxBytes(int32(max(1_000_012, f.payload.maxLen()+1024))),
		kgo.MaxBufferedRecords(100_000),
	)
	return nil
}

// perfAcks maps --acks to franz-go options. Idempotence (franz-go's and
// Kafka's default) needs acks=all, so it is off with 0 or 1.
func perfAcks(acks string) ([]kgo.Opt, error) {
	switch strings.ToLower(strings.TrimSpace(acks)) {
	case "all", "-1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
	case "1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "0":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	}
	return nil, fmt.Errorf("--acks %q: want 0, 1 or all", acks)
}

// perfCompression maps --compression to one codec, with no fallback: a
// broker that cannot take it fails the run rather than silently measuring
// something else.
func perfCompression(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--compression %q: want none, gzip, snappy, lz4 or zstd", name)
}

// consumeFlags are `mlog perf consume`'s settings.
type consumeFlags struct {
	perfCommon
}

func perfConsumeCmd() *cobra.Command {
	f := &consumeFlags{}
	cmd := &cobra.Command{
		Use:   "consume",
		Short: "Consume records from the start of a topic and report throughput and bytes",
		Long: `consume reads --num-records records from the start of every partition of
--topic with one client (no consumer group) and prints, like
kafka-consumer-perf-test, start.time, end.time, data.consumed.in.MB, MB.sec,
data.consumed.in.nMsg and nMsg.sec (MB = 2^20 bytes of keys and values),
then the batch bytes fetched off the wire. See docs/perf.md.

Every flag can also be set with an MLOG_<FLAG> environment variable
(--num-records is MLOG_NUM_RECORDS); the command line wins.`,
		Example: `  mlog perf consume --brokers 127.0.0.1:9094 --topic mlog-perf --num-records 1000000`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.validate(); err != nil {
				return err
			}
			return runPerfConsume(cmd.OutOrStdout(), f)
		},
	}
	f.perfCommon.register(cmd)
	return withEnv(cmd)
}

func perfContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); stop() }
}

// perfPing fails fast, in one line, when no seed broker answers.
func perfPing(ctx context.Context, cl *kgo.Client, f *perfCommon) error {
	ctx, cancel := context.WithTimeout(ctx, min(f.timeout, perfSetupTimeout))
	defer cancel()
	if err := cl.Ping(ctx); err != nil {
		return fmt.Errorf("cluster unreachable at %s: %w", f.brokers, err)
	}
	return nil
}

// wireBytes counts record batches as franz-go wrote or read them: record
// bytes after compression, without each batch's 61-byte header and the
// request framing. Produce counts acknowledged batches only (a retried
// batch once); fetch counts every batch decoded, including records read
// past --num-records in the last fetch.
type wireBytes struct {
	batches, records, compressed, uncompressed atomic.Int64
	codecs                                     atomic.Uint32 // bit i: a batch with compression type i
}

var (
	_ kgo.HookProduceBatchWritten = (*wireBytes)(nil)
	_ kgo.HookFetchBatchRead      = (*wireBytes)(nil)
)

func (w *wireBytes) OnProduceBatchWritten(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.ProduceBatchMetrics) {
	w.add(m.NumRecords, m.CompressedBytes, m.UncompressedBytes, m.CompressionType)
}

func (w *wireBytes) OnFetchBatchRead(_ kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	w.add(m.NumRecords, m.CompressedBytes, m.UncompressedBytes, m.CompressionType)
}

func (w *wireBytes) add(records, compressed, uncompressed int, codec uint8) {
	w.batches.Add(1)
	w.compressed.Add(int64(compressed))
	w.uncompressed.Add(int64(uncompressed))
	w.codecs.Or(1 << min(codec, 31))
	w.records.Add(int64(records)) // last: waitRecords then sees the rest

}

// codecNames are Kafka's compression types by attribute value.
var codecNames = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// waitRecords waits, up to max, until the hooks have counted n records:
// franz-go runs a batch's hook after its records' promises, so the last
// batch may still be on its way when the producers are done.
func (w *wireBytes) waitRecords(n int64, max time.Duration) {
	deadline := time.Now().Add(max)
	for w.records.Load() < n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling a counter the hook goroutine moves
	}
}

// summary is the "bytes on the wire" line.
func (w *wireBytes) summary() string {
	c, u := w.compressed.Load(), w.uncompressed.Load()
	ratio := 0.0
	if u > 0 {
		ratio = float64(c) / float64(u)
	}
	var codecs []string
	for i, bits := 0, w.codecs.Load(); bits != 0; i, bits = i+1, bits>>1 {
		switch {
		case bits&1 == 0:
		case i < len(codecNames):
			codecs = append(codecs, codecNames[i])
		default:
			codecs = append(codecs, fmt.Sprintf("type %d", i))
		}
	}
	if len(codecs) == 0 {
		codecs = []string{"no batches"}
	}
	return fmt.Sprintf("bytes on the wire: %d (%.2f MB) in %d batches of %d records; %d before compression (%s; compressed/uncompressed %.3f)",
		c, float64(c)/mib, w.batches.Load(), w.records.Load(), u, strings.Join(codecs, ", "), ratio)
}

// ensurePerfTopic creates the topic when it does not exist and waits until
// every partition has a leader; an existing topic is used as it is. It
// returns the partition count and whether it created the topic. Creation
// is retried while the topic has no partitions: a broker still starting
// answers LEADER_NOT_AVAILABLE for a topic it does not know yet.
func ensurePerfTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int32, rf int16) (int32, bool, error) {
	created := false
	for {
		n, listed, err := perfTopicReady(ctx, adm, topic)
		if err == nil {
			return n, created, nil
		}
		if !listed {
			res, cerr := adm.CreateTopic(ctx, partitions, rf, nil, topic)
			if cerr == nil {
				cerr = res.Err
			}
			var kcerr *kerr.Error
			switch {
			case cerr == nil:
				created = true
			case errors.Is(cerr, kerr.TopicAlreadyExists): // someone else just made it
			case errors.As(cerr, &kcerr) && !kcerr.Retriable:
				return 0, false, fmt.Errorf("create topic %q: %w", topic, cerr)
			default:
				err = fmt.Errorf("create topic: %w", cerr)
			}
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, created, fmt.Errorf("topic %q not ready: %w", topic, err)
		}
	}
}

// perfTopicReady returns the topic's partition count once every partition
// has a leader; listed says whether metadata shows any partition at all.
func perfTopicReady(ctx context.Context, adm *kadm.Client, topic string) (n int32, listed bool, err error) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		return 0, false, err
	}
	td, ok := md.Topics[topic]
	switch {
	case !ok:
		return 0, false, kerr.UnknownTopicOrPartition
	case len(td.Partitions) == 0 && td.Err != nil:
		return 0, false, td.Err
	case len(td.Partitions) == 0:
		return 0, false, errors.New("no partitions yet")
	case td.Err != nil:
		return 0, true, td.Err
	}
	for p, pd := range td.Partitions {
		if pd.Err != nil {
			return 0, true, fmt.Errorf("partition %d: %w", p, pd.Err)
		}
		if pd.Leader < 0 {
			return 0, true, fmt.Errorf("partition %d has no leader", p)
		}
	}
	return int32(len(td.Partitions)), true, nil
}

// errLogDirsNotServed means no broker advertises DescribeLogDirs.
var errLogDirsNotServed = errors.New("not reported by the broker")

// storedBytes is the size of the topic's logs summed over every replica on
// every broker, as DescribeLogDirs reports it.
func storedBytes(ctx context.Context, adm *kadm.Client, topic string, partitions int32) (int64, int, error) {
	versions, err := adm.ApiVersions(ctx)
	if err != nil {
		return 0, 0, err
	}
	served := false
	versions.Each(func(v kadm.BrokerApiVersions) {
		if _, _, ok := v.KeyVersions(describeLogDirsKey); ok && v.Err == nil {
			served = true
		}
	})
	if !served {
		return 0, 0, errLogDirsNotServed
	}
	var set kadm.TopicsSet
	for p := range partitions {
		set.Add(topic, p)
	}
	dirs, err := adm.DescribeAllLogDirs(ctx, set)
	if err != nil {
		return 0, 0, err
	}
	var size int64
	replicas := 0
	var dirErr error
	dirs.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			dirErr = fmt.Errorf("broker %d dir %s: %w", d.Broker, d.Dir, d.Err)
			return
		}
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == topic && !p.IsFuture {
				size += p.Size
				replicas++
			}
		})
	})
	return size, replicas, dirErr
}
