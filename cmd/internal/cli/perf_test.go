package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mlog/mlog/broker/brokertest"
)

// batchOf is what a producer would put in one batch: values first, first+1,
// … up to about limit bytes.
func batchOf(p *payloads, first int64, limit int) []byte {
	var b []byte
	for i := first; len(b) < limit; i++ {
		b = append(b, p.value(i)...)
	}
	return b
}

func TestPerfRandomPayloadDoesNotCompress(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, size := range []int{100, 1024, 64 << 10} {
		p := randomPayloads(1, size)
		// A 1 MiB batch, and one taken where the pool wraps around.
		for _, first := range []int64{0, p.offsets/int64(p.step) - 3} {
			sample := batchOf(p, first, 1<<20)
			var gz bytes.Buffer
			w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
			w.Write(sample)
			w.Close()
			zs := enc.EncodeAll(sample, nil)
			for name, n := range map[string]int{"gzip": gz.Len(), "zstd": len(zs)} {
				if ratio := float64(n) / float64(len(sample)); ratio <= 0.99 {
					t.Errorf("record size %d from %d: %s compresses %d bytes to %d (ratio %.3f); want > 0.99", size, first, name, len(sample), n, ratio)
				}
			}
		}
	}
}

func TestPerfRandomPayloadIsReproducibleAndVaried(t *testing.T) {
	a, b, other := randomPayloads(1, 512), randomPayloads(1, 512), randomPayloads(2, 512)
	seen := map[string]int64{}
	for i := range int64(5000) {
		va := a.value(i)
		if len(va) != 512 {
			t.Fatalf("value %d: %d bytes, want 512", i, len(va))
		}
		if !bytes.Equal(va, b.value(i)) {
			t.Fatalf("value %d differs between two generators with seed 1", i)
		}
		if bytes.Equal(va, other.value(i)) {
			t.Fatalf("value %d is the same for seeds 1 and 2", i)
		}
		if j, dup := seen[string(va)]; dup {
			t.Fatalf("values %d and %d are the same", j, i)
		}
		seen[string(va)] = i
	}
	// Far beyond one lap of the pool, values still differ from the first.
	if lap := a.offsets / a.step; bytes.Equal(a.value(0), a.value(lap+1)) || bytes.Equal(a.value(1), a.value(lap+1)) {
		t.Fatal("values repeat after one lap of the pool")
	}
}

func TestPerfPayloadFileLinesAreCycled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "payloads.txt")
	if err := os.WriteFile(path, []byte("alpha\n{\"id\":2}\n\nlast\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := filePayloads(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"alpha", `{"id":2}`, "", "last"} // an inner empty line is a record, as in Kafka's tool
	for i := range int64(10) {
		if got := string(p.value(i)); got != want[i%4] {
			t.Errorf("value %d = %q, want %q", i, got, want[i%4])
		}
	}
	if p.maxLen() != len(`{"id":2}`) {
		t.Errorf("maxLen %d", p.maxLen())
	}

	empty := filepath.Join(t.TempDir(), "empty.txt")
	if err := os.WriteFile(empty, []byte("\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := filePayloads(empty); err == nil || !strings.Contains(err.Error(), "no records") {
		t.Errorf("empty payload file: err %v, want no records", err)
	}
}

func TestPerfBadFlagsFailWithOneLine(t *testing.T) {
	lines := filepath.Join(t.TempDir(), "lines.txt")
	if err := os.WriteFile(lines, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := freeAddr(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"produce", "--compression", "brotli"}, `--compression "brotli": want none, gzip, snappy, lz4 or zstd`},
		{[]string{"produce", "--producers", "0"}, "--producers 0: want at least 1"},
		{[]string{"produce", "--producers", "3", "--num-records", "2"}, "--producers 3: more producers than --num-records 2"},
		{[]string{"produce", "--record-size", "0"}, "--record-size 0: want 1 to"},
		{[]string{"produce", "--payload-file", filepath.Join(t.TempDir(), "missing.txt")}, "--payload-file: open "},
		{[]string{"produce", "--payload-file", lines, "--record-size", "10"}, "--record-size and --payload-file: give one or the other"},
		{[]string{"produce", "--acks", "2"}, `--acks "2": want 0, 1 or all`},
		{[]string{"produce", "--throughput", "0"}, "--throughput 0"},
		{[]string{"produce", "--partitions", "0"}, "--partitions 0"},
		{[]string{"produce", "--replication-factor", "-2"}, "--replication-factor -2"},
		{[]string{"produce", "--num-records", "0"}, "--num-records 0: want at least 1"},
		{[]string{"produce", "--timeout", "0s"}, "--timeout 0s"},
		{[]string{"produce", "--brokers", ""}, "empty broker address"},
		{[]string{"produce", "--topic", ""}, "--topic is empty"},
		{[]string{"produce", "--seed", "one"}, `invalid argument "one" for "--seed"`},
		{[]string{"consume", "--num-records", "-1"}, "--num-records -1"},
		{[]string{"produce", "--brokers", closed, "--timeout", "1s"}, "cluster unreachable at " + closed},
		{[]string{"consume", "--brokers", closed, "--timeout", "1s"}, "cluster unreachable at " + closed},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			expectOneLineError(t, append([]string{"perf"}, tc.args...), tc.want)
		})
	}
}

func TestPerfFlagsFromEnvironment(t *testing.T) {
	t.Setenv("MLOG_COMPRESSION", "brotli")
	if _, _, err := runCLI(t, "perf", "produce"); err == nil || !strings.Contains(err.Error(), `--compression "brotli"`) {
		t.Fatalf("MLOG_COMPRESSION=brotli: err %v", err)
	}
	t.Setenv("MLOG_COMPRESSION", "zstd")
	t.Setenv("MLOG_PRODUCERS", "0")
	if _, _, err := runCLI(t, "perf", "produce"); err == nil || !strings.Contains(err.Error(), "--producers 0") {
		t.Fatalf("MLOG_PRODUCERS=0: err %v", err)
	}
}

var (
	finalLine  = regexp.MustCompile(`(?m)^(\d+) records sent, [\d.]+ records/sec \([\d.]+ MB/sec\), [\d.]+ ms avg latency, [\d.]+ ms max latency, [\d.]+ ms 50th, [\d.]+ ms 95th, [\d.]+ ms 99th, [\d.]+ ms 99\.9th\.$`)
	wireLine   = regexp.MustCompile(`(?m)^bytes on the wire: (\d+) \([\d.]+ MB\) in (\d+) batches of (\d+) records; (\d+) before compression \(([a-z0-9, ]+); compressed/uncompressed ([\d.]+)\)$`)
	storedLine = regexp.MustCompile(`(?m)^bytes stored: (\d+) \(`)
	dataRow    = regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}, ([\d.]+), [\d.]+, (\d+), [\d.]+, 0, \d+, [\d.]+, [\d.]+$`)
)

func TestPerfProduceAndConsumeOnOneNodeCluster(t *testing.T) {
	c := brokertest.Start(t, 1)
	const (
		topic      = "perf-e2e"
		records    = 2000
		recordSize = 512
	)
	stdout, stderr, err := runCLI(t, "perf", "produce", "--brokers", c.Seeds()[0], "--topic", topic,
		"--num-records", strconv.Itoa(records), "--record-size", strconv.Itoa(recordSize),
		"--producers", "2", "--partitions", "3", "--compression", "none", "--timeout", "60s")
	t.Logf("perf produce:\n%s%s", stderr, stdout)
	if err != nil {
		t.Fatal(err)
	}
	m := finalLine.FindStringSubmatch(stdout)
	if m == nil || m[1] != strconv.Itoa(records) {
		t.Fatalf("final line: %q, want %d records sent", m, records)
	}
	w := wireLine.FindStringSubmatch(stdout)
	if w == nil {
		t.Fatal("no bytes on the wire line")
	}
	wire, _ := strconv.Atoi(w[1])
	if wire < records*recordSize {
		t.Errorf("bytes on the wire %d: want at least %d × %d", wire, records, recordSize)
	}
	if w[3] != strconv.Itoa(records) || w[5] != "none" || w[6] != "1.000" {
		t.Errorf("wire line %q: want %d records, uncompressed", w[0], records)
	}
	// mlog serves DescribeLogDirs: the logs grew by at least the values.
	st := storedLine.FindStringSubmatch(stdout)
	if st == nil {
		t.Fatalf("no bytes stored figure in:\n%s", stdout)
	}
	if stored, _ := strconv.Atoi(st[1]); stored < records*recordSize {
		t.Errorf("bytes stored %d: want at least %d × %d", stored, records, recordSize)
	}
	if !strings.Contains(stderr, "3 partitions, created") {
		t.Errorf("stderr %q: want the topic created with 3 partitions", stderr)
	}

	// 2,000 records landed, spread over the three partitions.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ends, err := c.Admin().ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for p := range int32(3) {
		o, ok := ends.Lookup(topic, p)
		if !ok || o.Err != nil {
			t.Fatalf("partition %d: %v %v", p, ok, o.Err)
		}
		total += o.Offset
		t.Logf("partition %d: %d records", p, o.Offset)
		if o.Offset == 0 {
			// The sticky partitioner moves on every 64 KiB: about 16
			// moves per producer here, so an empty partition means none.
			t.Errorf("partition %d: no records; want them spread", p)
		}
	}
	if total != records {
		t.Fatalf("%d records in the topic, want %d", total, records)
	}

	stdout, _, err = runCLI(t, "perf", "consume", "--brokers", c.Seeds()[0], "--topic", topic,
		"--num-records", strconv.Itoa(records), "--timeout", "60s")
	t.Logf("perf consume:\n%s", stdout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, consumeHeader+"\n") {
		t.Error("no kafka-consumer-perf-test header")
	}
	row := dataRow.FindStringSubmatch(stdout)
	if row == nil || row[2] != strconv.Itoa(records) {
		t.Fatalf("data row %q: want %d records", row, records)
	}
	if mb, _ := strconv.ParseFloat(row[1], 64); mb < float64(records*recordSize)/mib-0.0001 {
		t.Errorf("data.consumed.in.MB %s: want %d × %d bytes", row[1], records, recordSize)
	}
	if w := wireLine.FindStringSubmatch(stdout); w == nil || w[3] != strconv.Itoa(records) {
		t.Errorf("consume wire line %q: want %d records fetched", w, records)
	}
}
