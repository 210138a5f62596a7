package storage

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mlog/mlog/storage/batch"
	"github.com/mlog/mlog/storage/batch/batchtest"
)

func TestAppendAssignsDenseOffsetsAndRewritesHeader(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig(t))
	defer l.Close()
	r := rand.New(rand.NewPCG(1, 2))
	var want []entry
	next := int64(0)
	for i := range 20 {
		n := 1 + i%5
		e := appendRandom(t, l, r, n, 100, 1_700_000_000_000)
		if e.base != next || e.last != next+int64(n)-1 {
			t.Fatalf("batch %d got offsets %d..%d, want %d..%d", i, e.base, e.last, next, next+int64(n)-1)
		}
		next = e.last + 1
		want = append(want, e)
	}
	checkContent(t, l, want)
}

func TestAppendRefusesBadBatchesAndLeavesLogUnchanged(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBatchBytes = 4096
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(3, 4))
	good := appendRandom(t, l, r, 2, 10, 1000)

	corrupt := batchtest.Values(1000, []byte("a"), []byte("b"))
	corrupt[len(corrupt)-1] ^= 0xff
	_, err := l.Append(corrupt, 0)
	mustNot(t, err, batch.ErrCorrupt)

	big := batchtest.Random(r, 10, 1000, 1000)
	_, err = l.Append(big, 0)
	mustNot(t, err, ErrBatchTooLarge)

	short := batchtest.Values(1000, []byte("x"))
	_, err = l.Append(short[:len(short)-3], 0)
	mustNot(t, err, batch.ErrTruncated)

	control := batchtest.Build(batchtest.Spec{Values: [][]byte{[]byte("c")}, ProducerID: batchtest.NoProducer,
		ProducerEpoch: batchtest.NoProducer, BaseSequence: batchtest.NoProducer, Attributes: 1 << 5})
	_, err = l.Append(control, 0)
	mustNot(t, err, batch.ErrControlBatch)

	checkContent(t, l, []entry{good})
}

func TestReadReturnsWholeBatchesWithinLimits(t *testing.T) {
	l := openLog(t, t.TempDir(), testConfig(t))
	defer l.Close()
	r := rand.New(rand.NewPCG(5, 6))
	var es []entry
	for range 50 {
		es = append(es, appendRandom(t, l, r, 3, 200, 5000))
	}
	size := int64(len(es[0].bytes))
	for _, tc := range []struct {
		name              string
		offset, maxBytes  int64
		maxOffset         int64
		wantFirst, wantNb int
	}{
		{"first batch even when bigger than maxBytes", 0, 10, -1, 0, 1},
		{"whole batches up to maxBytes", 0, 3*size + size/2, -1, 0, 3},
		{"starts at the batch holding a mid-batch offset", 31, 2 * size, -1, 10, 2},
		{"stops below maxOffset (high watermark)", 0, 1 << 20, 12, 0, 4},
		{"high watermark mid-batch excludes that batch", 0, 1 << 20, 13, 0, 4},
		{"everything", 0, 1 << 30, -1, 0, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := l.Read(tc.offset, tc.maxBytes, tc.maxOffset)
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Release()
			b, err := reg.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			for _, e := range es[tc.wantFirst : tc.wantFirst+tc.wantNb] {
				want = append(want, e.bytes...)
			}
			if string(b) != string(want) {
				t.Fatalf("got %d bytes, want batches %d..%d (%d bytes)", len(b), tc.wantFirst, tc.wantFirst+tc.wantNb-1, len(want))
			}
		})
	}
	end, err := l.Read(l.LogEndOffset(), 100, -1)
	if err != nil || !end.Empty() {
		t.Fatalf("read at log end: %v, empty=%v", err, end.Empty())
	}
	_, err = l.Read(l.LogEndOffset()+1, 100, -1)
	mustNot(t, err, ErrOffsetOutOfRange)
	_, err = l.Read(-1, 100, -1)
	mustNot(t, err, ErrOffsetOutOfRange)
}

func TestRollOnSegmentBytesAndReadAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes = 4096
	cfg.IndexIntervalBytes = 512
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(7, 8))
	var es []entry
	for range 60 {
		es = append(es, appendRandom(t, l, r, 2, 300, 5000))
	}
	if n := l.NumSegments(); n < 10 {
		t.Fatalf("%d segments, want at least 10 with segment.bytes=4096", n)
	}
	for _, p := range segmentFiles(t, dir, logSuffix) {
		if sz := fileSize(t, p); sz > cfg.SegmentBytes {
			t.Fatalf("%s is %d bytes, over segment.bytes", p, sz)
		}
		base := filepath.Base(p)
		if len(base) != 24 {
			t.Fatalf("segment name %q is not <20 digits>.log", base)
		}
	}
	// Every offset, looked up on its own, finds the batch that holds it.
	for _, e := range es {
		for off := e.base; off <= e.last; off++ {
			reg, err := l.Read(off, 1, -1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := reg.Bytes()
			reg.Release()
			if string(b) != string(e.bytes) {
				t.Fatalf("read of offset %d did not return its batch", off)
			}
		}
	}
	checkContent(t, l, es)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed segments have trimmed indexes.
	for _, p := range segmentFiles(t, dir, indexSuffix) {
		if sz := fileSize(t, p); sz >= cfg.MaxIndexBytes || sz%offsetEntrySize != 0 {
			t.Fatalf("%s not trimmed: %d bytes", p, sz)
		}
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, es)
}

func TestRollOnSegmentMs(t *testing.T) {
	cfg := testConfig(t)
	now := time.UnixMilli(1_700_000_000_000)
	cfg.Now = func() time.Time { return now }
	cfg.SegmentMs = time.Hour
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(9, 10))
	appendRandom(t, l, r, 1, 10, now.UnixMilli())
	appendRandom(t, l, r, 1, 10, now.UnixMilli())
	if l.NumSegments() != 1 {
		t.Fatalf("rolled too early")
	}
	now = now.Add(time.Hour + time.Second)
	appendRandom(t, l, r, 1, 10, now.UnixMilli())
	if n := l.NumSegments(); n != 2 {
		t.Fatalf("%d segments after segment.ms passed, want 2", n)
	}
}

func TestTruncateTo(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes = 4096
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(11, 12))
	var es []entry
	for range 40 {
		es = append(es, appendRandom(t, l, r, 3, 200, 5000))
	}
	segsBefore := l.NumSegments()
	// Into an older segment, at a batch boundary.
	cut := es[10].base
	if err := l.TruncateTo(cut); err != nil {
		t.Fatal(err)
	}
	es = es[:10]
	checkContent(t, l, es)
	if l.NumSegments() >= segsBefore {
		t.Fatalf("truncation kept %d of %d segments", l.NumSegments(), segsBefore)
	}
	// Mid-batch: the whole batch goes.
	if err := l.TruncateTo(es[8].base + 1); err != nil {
		t.Fatal(err)
	}
	es = es[:8]
	checkContent(t, l, es)
	// Appends continue at the new end, and survive a crash and a clean reopen.
	for range 10 {
		es = append(es, appendRandom(t, l, r, 2, 200, 6000))
	}
	if es[8].base != es[7].last+1 {
		t.Fatalf("append after truncation at %d, want %d", es[8].base, es[7].last+1)
	}
	checkContent(t, l, es)
	l.crash()
	l = openLog(t, dir, cfg)
	checkContent(t, l, es)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, es)
	// At or below the log start: the log restarts empty at that offset.
	if err := l.TruncateTo(0); err != nil {
		t.Fatal(err)
	}
	checkContent(t, l, nil)
	if err := l.Reset(500); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() != 500 || l.LogEndOffset() != 500 {
		t.Fatalf("after Reset(500): start %d end %d", l.LogStartOffset(), l.LogEndOffset())
	}
	e := appendRandom(t, l, r, 1, 10, 7000)
	if e.base != 500 {
		t.Fatalf("append after reset at %d", e.base)
	}
}

func TestAppendReplicatedKeepsOffsets(t *testing.T) {
	leader := openLog(t, t.TempDir(), testConfig(t))
	defer leader.Close()
	follower := openLog(t, t.TempDir(), testConfig(t))
	defer follower.Close()
	r := rand.New(rand.NewPCG(13, 14))
	var es []entry
	for range 10 {
		es = append(es, appendRandom(t, leader, r, 4, 50, 100))
	}
	reg, err := leader.Read(0, 1<<20, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := reg.Bytes()
	reg.Release()
	// A fetch response may end in a partial batch: it is ignored.
	res, err := follower.AppendReplicated(append(b, es[0].bytes[:30]...))
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != 0 || res.LastOffset != es[9].last {
		t.Fatalf("replicated %d..%d", res.BaseOffset, res.LastOffset)
	}
	checkContent(t, follower, es)
	_, err = follower.AppendReplicated(es[3].bytes)
	mustNot(t, err, ErrOffsetMismatch)
	checkContent(t, follower, es)
}

// A replicated batch above the log end is appended, leaving a hole: a
// compacted leader's log has them, also once its topic is no longer
// compacted (cleanup.policy changed live), so whatever the policy; stale
// fetch replies are the partition's to refuse (it checks the fetch
// offset). A batch below the end is refused.
func TestAppendReplicatedAcceptsHoles(t *testing.T) {
	for _, compact := range []bool{false, true} {
		cfg := testConfig(t)
		cfg.Compact = compact
		l := openLog(t, t.TempDir(), cfg)
		b := batchtest.Values(1_700_000_000_000, []byte("a"))
		batch.SetBaseOffset(b, 0)
		if _, err := l.AppendReplicated(b); err != nil {
			t.Fatal(err)
		}
		b = batchtest.Values(1_700_000_000_000, []byte("b"))
		batch.SetBaseOffset(b, 5)
		if _, err := l.AppendReplicated(b); err != nil || l.LogEndOffset() != 6 {
			t.Fatalf("compact %t: append at 5 over end 1: %v, end %d", compact, err, l.LogEndOffset())
		}
		b = batchtest.Values(1_700_000_000_000, []byte("c"))
		batch.SetBaseOffset(b, 3)
		_, err := l.AppendReplicated(b)
		mustNot(t, err, ErrOffsetMismatch)
		l.Close()
	}
}

func TestOffsetForTimestamp(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentBytes = 2048
	cfg.IndexIntervalBytes = 0
	dir := t.TempDir()
	l := openLog(t, dir, cfg)
	// Batch i holds records at 1000+10i .. 1000+10i+2; offsets 3i..3i+2.
	for i := range 40 {
		ts := int64(1000 + 10*i)
		b := batchtest.Build(batchtest.Spec{Values: [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)},
			Timestamp: ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1})
		if _, err := l.Append(b, 0); err != nil {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		for _, tc := range []struct {
			ts   int64
			want int64
			ok   bool
		}{{0, 0, true}, {1000, 0, true}, {1001, 1, true}, {1003, 3, true}, {1152, 47, true}, {1392, 119, true}, {1393, 0, false}} {
			off, ok, err := l.OffsetForTimestamp(tc.ts)
			if err != nil || ok != tc.ok || (ok && off != tc.want) {
				t.Fatalf("OffsetForTimestamp(%d) = %d, %v, %v; want %d, %v", tc.ts, off, ok, err, tc.want, tc.ok)
			}
		}
	}
	check()
	if l.NumSegments() < 5 {
		t.Fatalf("want several segments, got %d", l.NumSegments())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	check()
}

func TestRetention(t *testing.T) {
	t.Run("bytes", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.SegmentBytes = 4096
		cfg.RetentionBytes = 10000
		cfg.RetentionMs = -1
		dir := t.TempDir()
		l := openLog(t, dir, cfg)
		r := rand.New(rand.NewPCG(15, 16))
		var es []entry
		for range 50 {
			es = append(es, appendRandom(t, l, r, 2, 300, 1000))
		}
		n, err := l.Retention()
		if err != nil || n == 0 {
			t.Fatalf("retention deleted %d segments, err %v", n, err)
		}
		if sz := l.Size(); sz < cfg.RetentionBytes || sz-int64(len(es[0].bytes))*8 > cfg.RetentionBytes {
			t.Fatalf("log is %d bytes after retention.bytes=%d", sz, cfg.RetentionBytes)
		}
		start := l.LogStartOffset()
		if start == 0 {
			t.Fatal("log start offset did not move")
		}
		_, err = l.Read(start-1, 100, -1)
		mustNot(t, err, ErrOffsetOutOfRange)
		checkContent(t, l, es)
		if got := len(segmentFiles(t, dir, logSuffix)); got != l.NumSegments() {
			t.Fatalf("%d segment files on disk, log has %d", got, l.NumSegments())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, cfg)
		defer l.Close()
		if l.LogStartOffset() != start {
			t.Fatalf("log start %d after reopen, want %d", l.LogStartOffset(), start)
		}
		checkContent(t, l, es)
	})
	t.Run("time never deletes the active segment", func(t *testing.T) {
		cfg := testConfig(t)
		cfg.SegmentBytes = 4096
		now := time.UnixMilli(10_000_000)
		cfg.Now = func() time.Time { return now }
		cfg.RetentionMs = time.Minute
		l := openLog(t, t.TempDir(), cfg)
		defer l.Close()
		r := rand.New(rand.NewPCG(17, 18))
		var es []entry
		for i := range 40 { // timestamps 1 s apart
			es = append(es, appendRandom(t, l, r, 1, 600, now.UnixMilli()+int64(i)*1000))
		}
		now = now.Add(40*time.Second + time.Minute) // the first ~40 s worth are now over a minute old
		if _, err := l.Retention(); err != nil {
			t.Fatal(err)
		}
		start := l.LogStartOffset()
		for _, e := range es {
			if e.last < start && now.UnixMilli()-e.maxTs <= time.Minute.Milliseconds() {
				t.Fatalf("deleted offset %d, only %d ms old", e.base, now.UnixMilli()-e.maxTs)
			}
		}
		if start == 0 {
			t.Fatal("nothing deleted")
		}
		now = now.Add(24 * time.Hour)
		if _, err := l.Retention(); err != nil {
			t.Fatal(err)
		}
		if l.NumSegments() != 1 || l.LogEndOffset() != es[len(es)-1].last+1 {
			t.Fatalf("want just the active segment left: %d segments", l.NumSegments())
		}
		checkContent(t, l, es)
	})
}

func TestCleanReopenIsLazy(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes = 4096
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(19, 20))
	var es []entry
	for range 30 {
		es = append(es, appendRandom(t, l, r, 2, 300, 1000))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	defer l.Close()
	segs := l.segments()
	for _, s := range segs[:len(segs)-1] {
		if s.ix.Load() != nil {
			t.Fatalf("segment %d's index was loaded by a clean open", s.base)
		}
	}
	checkContent(t, l, es)
	if segs[0].ix.Load() == nil {
		t.Fatal("reading did not load the index")
	}
}

func TestBadConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SegmentBytes = 10
	_, err := Open(t.TempDir(), cfg)
	mustNot(t, err, ErrInvalidConfig)
}

func TestRegionAfterSegmentDeletedStillReads(t *testing.T) {
	cfg := testConfig(t)
	cfg.SegmentBytes = 4096
	cfg.RetentionBytes = 0
	l := openLog(t, t.TempDir(), cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(21, 22))
	first := appendRandom(t, l, r, 2, 300, 1000)
	for range 30 {
		appendRandom(t, l, r, 2, 300, 1000)
	}
	reg, err := l.Read(0, 100, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Retention(); err != nil {
		t.Fatal(err)
	}
	if l.LogStartOffset() == 0 {
		t.Fatal("retention kept the first segment")
	}
	if _, err := os.Stat(l.segments()[0].path + logSuffix); err != nil {
		t.Fatal(err)
	}
	b, err := reg.Bytes()
	reg.Release()
	if err != nil || string(b) != string(first.bytes) {
		t.Fatalf("held region unreadable after its segment was deleted: %v", err)
	}
}

// An active segment's indexes are mapped at what a full segment can need
// (one entry per index.interval.bytes, not segment.index.bytes) and get
// disk blocks only as entries arrive, from initialIndexAlloc up, doubling:
// a broker with thousands of partitions would otherwise hold gigabytes of
// allocated, empty index. The blocks are really allocated (a full disk must
// fail a fallocate, not an mmap store). Filling segments still rolls them
// on size, with every record readable.
func TestIndexAllocationGrowsWithEntries(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes, cfg.IndexIntervalBytes, cfg.MaxIndexBytes = 1<<20, 64, 10<<20
	l := openLog(t, dir, cfg)
	offPath := filepath.Join(dir, segmentName(0)+indexSuffix)
	timPath := filepath.Join(dir, segmentName(0)+timeIndexSuffix)
	if sz := fileSize(t, offPath); sz != initialIndexAlloc {
		t.Fatalf("fresh offset index holds %d bytes, want %d", sz, initialIndexAlloc)
	}
	if sz, want := fileSize(t, timPath), int64(initialIndexAlloc-initialIndexAlloc%timeEntrySize); sz != want {
		t.Fatalf("fresh time index holds %d bytes, want %d", sz, want)
	}
	capOff := cfg.indexBytes(offsetEntrySize)
	r := rand.New(rand.NewPCG(3, 4))
	var es []entry
	for len(l.segments()) == 1 && l.segments()[0].ix.Load().off.entries()*offsetEntrySize <= 3*initialIndexAlloc {
		es = append(es, appendRandom(t, l, r, 1, 100, 200))
	}
	if len(l.segments()) != 1 {
		t.Fatal("rolled before the index outgrew its first allocation")
	}
	n := l.segments()[0].ix.Load().off.entries() * offsetEntrySize
	sz := fileSize(t, offPath)
	if sz < n || sz > 2*n || sz > capOff {
		t.Fatalf("offset index with %d bytes of entries holds %d bytes, want between them and twice them, within %d", n, sz, capOff)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(offPath, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 < sz {
		t.Fatalf("offset index of %d bytes has %d bytes of blocks: grown sparse, an mmap store could fault on a full disk", sz, st.Blocks*512)
	}
	for range 700 { // several full segments
		es = append(es, appendRandom(t, l, r, 4, 1000, 1000))
	}
	segs := l.segments()
	if len(segs) < 3 {
		t.Fatalf("%d segments, want the log to roll on size", len(segs))
	}
	for _, s := range segs[:len(segs)-1] {
		if sz := s.size.Load(); sz < cfg.SegmentBytes-8<<10 {
			t.Errorf("segment %d rolled at %d bytes, well before segment.bytes %d (index full too soon?)", s.base, sz, cfg.SegmentBytes)
		}
	}
	checkContent(t, l, es)
	l.Close()
	l = openLog(t, dir, cfg)
	checkContent(t, l, es)
	l.Close()
}

// A quiet log reserves little disk ahead of its end: the blocks a segment
// allocates ahead grow with what it holds, from 1 MiB to 64 MiB.
func TestReserveAheadGrowsWithSegment(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes = 1 << 30
	l := openLog(t, dir, cfg)
	defer l.Close()
	r := rand.New(rand.NewPCG(5, 6))
	appendRandom(t, l, r, 2, 1000, 1000)
	allocated := func() int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(dir, segmentName(0)+logSuffix), &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	if a := allocated(); a > reserveMin+(64<<10) {
		t.Fatalf("a 2 KB log holds %d allocated bytes, want at most about %d", a, reserveMin)
	}
	for l.segments()[0].size.Load() < 8<<20 {
		appendRandom(t, l, r, 16, 1000, 1000)
	}
	if a, size := allocated(), l.segments()[0].size.Load(); a < size || a > 2*size+reserveMin {
		t.Fatalf("an %d-byte log holds %d allocated bytes, want between its size and about twice it", size, a)
	}
}

// openFDsIn counts this process's descriptors open on files in dir.
func openFDsIn(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && filepath.Dir(target) == dir {
			n++
		}
	}
	return n
}

// A log holds one descriptor per segment (its .log): indexes are mapped
// and their descriptors closed, so a broker's partition count is not
// bounded by a third of the open-file limit. The indexes still grow,
// trim and sync through their path.
func TestIndexesHoldNoDescriptors(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes, cfg.IndexIntervalBytes = 64<<10, 64
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(9, 9))
	var es []entry
	for len(l.segments()) < 3 {
		es = append(es, appendRandom(t, l, r, 2, 100, 500))
	}
	if err := l.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, segs := openFDsIn(t, dir), len(l.segments()); n != segs {
		t.Fatalf("%d descriptors open in the log's dir for %d segments, want one each", n, segs)
	}
	l.Close()
	l = openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, es)
}

// An index's trim reopens its path only if the path still names the
// mapped file: one put in its place (a reset, a rebuild) is left alone.
func TestIndexTrimLeavesAReplacedFileAlone(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.index")
	ix, _, err := openIndexFile(OSFS{}, path, offsetEntrySize, 64<<10, indexFresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := ix.add(func(b []byte) { copy(b, "12345678") }); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if err := ix.close(); err != nil {
		t.Fatal(err)
	}
	if sz := fileSize(t, path); sz != 4096 {
		t.Fatalf("the file now at the index's path was trimmed to %d bytes", sz)
	}
}
