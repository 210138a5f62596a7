package storage

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// crashFixture writes batches over a few segments, then crashes the log.
func crashFixture(t *testing.T, seed uint64) (string, Config, []entry) {
	t.Helper()
	dir := t.TempDir()
	cfg := testConfig(t)
	cfg.SegmentBytes = 8192
	cfg.IndexIntervalBytes = 256
	l := openLog(t, dir, cfg)
	r := rand.New(rand.NewPCG(seed, 99))
	var es []entry
	for i := range 40 {
		es = append(es, appendRandom(t, l, r, 1+r.IntN(4), 50+r.IntN(400), 1000+int64(i)))
	}
	l.crash()
	return dir, cfg, es
}

// activeLog returns the path of the last segment's .log file.
func activeLog(t *testing.T, dir string) string {
	t.Helper()
	logs := segmentFiles(t, dir, logSuffix)
	return logs[len(logs)-1]
}

// reopenAndCheck opens dir after damage and asserts it holds exactly want and
// keeps appending at the right offset.
func reopenAndCheck(t *testing.T, dir string, cfg Config, want []entry) {
	t.Helper()
	l := openLog(t, dir, cfg)
	defer l.Close()
	checkContent(t, l, want)
	next := int64(0)
	if len(want) > 0 {
		next = want[len(want)-1].last + 1
	}
	e := appendRandom(t, l, rand.New(rand.NewPCG(1, 1)), 2, 10, 5000)
	if e.base != next {
		t.Fatalf("append after recovery at %d, want %d", e.base, next)
	}
	checkContent(t, l, append(want, e))
}

// survivors returns the entries wholly inside the first `keep` bytes of the
// active segment, plus everything in earlier segments.
func survivors(t *testing.T, dir string, es []entry, keep int64) []entry {
	t.Helper()
	base := segmentBase(t, activeLog(t, dir))
	var out []entry
	var pos int64
	for _, e := range es {
		if e.base < base {
			out = append(out, e)
			continue
		}
		pos += int64(len(e.bytes))
		if pos > keep {
			break
		}
		out = append(out, e)
	}
	return out
}

func segmentBase(t *testing.T, path string) int64 {
	t.Helper()
	var base int64
	name := filepath.Base(path)
	for _, c := range name[:20] {
		base = base*10 + int64(c-'0')
	}
	return base
}

func TestCrashTornTailAtRandomPositions(t *testing.T) {
	for seed := range uint64(12) {
		dir, cfg, es := crashFixture(t, seed)
		p := activeLog(t, dir)
		size := fileSize(t, p)
		cut := rand.New(rand.NewPCG(seed, 7)).Int64N(size + 1)
		if err := os.Truncate(p, cut); err != nil {
			t.Fatal(err)
		}
		reopenAndCheck(t, dir, cfg, survivors(t, dir, es, cut))
	}
}

func TestCrashGarbageAfterLastBatch(t *testing.T) {
	for seed := range uint64(6) {
		dir, cfg, es := crashFixture(t, seed)
		f, err := os.OpenFile(activeLog(t, dir), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		junk := make([]byte, 1+rand.New(rand.NewPCG(seed, 8)).IntN(5000))
		for i := range junk {
			junk[i] = byte(seed) + byte(i*31)
		}
		if _, err := f.Write(junk); err != nil {
			t.Fatal(err)
		}
		f.Close()
		reopenAndCheck(t, dir, cfg, es)
	}
}

func TestCrashFlippedByteInLastBatch(t *testing.T) {
	for seed := range uint64(12) {
		dir, cfg, es := crashFixture(t, seed)
		last := es[len(es)-1]
		p := activeLog(t, dir)
		size := fileSize(t, p)
		start := size - int64(len(last.bytes))
		// Bytes 16.. are the magic and everything the CRC covers; 0..15 hold
		// the offset, length and epoch, which recovery checks otherwise.
		r := rand.New(rand.NewPCG(seed, 9))
		at := start + 16 + r.Int64N(int64(len(last.bytes))-16)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		f.ReadAt(b, at)
		b[0] ^= byte(1 + r.IntN(255))
		f.WriteAt(b, at)
		f.Close()
		reopenAndCheck(t, dir, cfg, es[:len(es)-1])
	}
}

func TestMissingIndexesAreRebuilt(t *testing.T) {
	for _, clean := range []bool{false, true} {
		name := "after crash"
		if clean {
			name = "after clean close"
		}
		t.Run(name, func(t *testing.T) {
			dir, cfg, es := crashFixture(t, 3)
			if clean {
				l := openLog(t, dir, cfg)
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
			}
			for _, suffix := range []string{indexSuffix, timeIndexSuffix} {
				for _, p := range segmentFiles(t, dir, suffix) {
					if err := os.Remove(p); err != nil {
						t.Fatal(err)
					}
				}
			}
			l := openLog(t, dir, cfg)
			checkContent(t, l, es)
			// Index lookups and timestamps work through the rebuilt files.
			for _, e := range es {
				reg, err := l.Read(e.last, 1, -1)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := reg.Bytes()
				reg.Release()
				if string(b) != string(e.bytes) {
					t.Fatalf("lookup of %d after rebuild returned the wrong batch", e.last)
				}
				off, ok, err := l.OffsetForTimestamp(e.maxTs)
				if err != nil || !ok || off > e.last {
					t.Fatalf("OffsetForTimestamp(%d) = %d %v %v after rebuild", e.maxTs, off, ok, err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if n := len(segmentFiles(t, dir, indexSuffix)); n != len(segmentFiles(t, dir, logSuffix)) {
				t.Fatalf("%d index files for %d segments after rebuild", n, len(segmentFiles(t, dir, logSuffix)))
			}
			reopenAndCheck(t, dir, cfg, es)
		})
	}
}

func TestGarbageIndexIsRebuilt(t *testing.T) {
	dir, cfg, es := crashFixture(t, 4)
	l := openLog(t, dir, cfg)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range segmentFiles(t, dir, indexSuffix) {
		junk := make([]byte, 64)
		for i := range junk {
			junk[i] = byte(i * 7)
		}
		if err := os.WriteFile(p, junk, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reopenAndCheck(t, dir, cfg, es)
}

func TestTornMiddleSegmentWithoutCheckpointDropsLaterSegments(t *testing.T) {
	dir, cfg, es := crashFixture(t, 5)
	logs := segmentFiles(t, dir, logSuffix)
	if len(logs) < 3 {
		t.Fatalf("fixture made %d segments", len(logs))
	}
	if err := os.Remove(filepath.Join(dir, checkpointName)); err != nil {
		t.Fatal(err)
	}
	mid := logs[1]
	midBase, nextBase := segmentBase(t, mid), segmentBase(t, logs[2])
	var want []entry
	var pos int64
	size := fileSize(t, mid)
	for _, e := range es {
		if e.base < midBase {
			want = append(want, e)
		} else if e.base < nextBase {
			pos += int64(len(e.bytes))
			if pos <= size/2 {
				want = append(want, e)
			}
		}
	}
	if err := os.Truncate(mid, size/2); err != nil {
		t.Fatal(err)
	}
	reopenAndCheck(t, dir, cfg, want)
	if n := len(segmentFiles(t, dir, logSuffix)); n != 2 {
		t.Fatalf("%d segments left, want 2 (later ones removed)", n)
	}
}

func TestCrashAfterCleanShutdownMarkerIsCleared(t *testing.T) {
	// Open after a clean close must clear the clean flag: a crash after it
	// is recovered like any other.
	dir, cfg, es := crashFixture(t, 6)
	l := openLog(t, dir, cfg)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, cfg)
	l.crash()
	ck, err := readCheckpoint(OSFS{}, dir)
	if err != nil || ck.clean {
		t.Fatalf("checkpoint after open %+v, %v: want not clean", ck, err)
	}
	p := activeLog(t, dir)
	size := fileSize(t, p)
	if err := os.Truncate(p, size-1); err != nil {
		t.Fatal(err)
	}
	reopenAndCheck(t, dir, cfg, es[:len(es)-1])
}
