package storage

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen writes arbitrary bytes as a segment, its indexes and the
// checkpoint, then opens, reads, appends, closes and reopens: errors are
// fine, panics are not, and whatever Open accepts must read back as whole
// valid batches.
func FuzzOpen(f *testing.F) {
	// Seed with the real files of a small log.
	dir := f.TempDir()
	cfg := DefaultConfig()
	cfg.IndexIntervalBytes = 64
	l, err := Open(dir, cfg)
	if err != nil {
		f.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 8 {
		if _, err := l.Append(randomBatch(r, 2, 40), 3); err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	seg := segmentName(0)
	f.Add(read(seg+logSuffix), read(seg+indexSuffix), read(seg+timeIndexSuffix), read(checkpointName))
	f.Add(read(seg + logSuffix)[:100], []byte{}, []byte{1, 2, 3}, []byte{})
	ck := checkpoint{clean: true, recoveryPoint: 5, logStartOffset: 3}.encode()
	f.Add(read(seg+logSuffix), []byte{0, 0, 0, 1, 0, 0, 0, 9}, []byte{}, ck)

	f.Fuzz(func(t *testing.T, logBytes, indexBytes, timeBytes, ckBytes []byte) {
		dir := t.TempDir()
		write := func(name string, b []byte) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		base := int64(0)
		if len(ckBytes) >= 8 && ckBytes[0]&1 == 1 {
			base = int64(binary.BigEndian.Uint16(ckBytes[1:3]))
		}
		seg := segmentName(base)
		write(seg+logSuffix, logBytes)
		write(seg+indexSuffix, indexBytes)
		write(seg+timeIndexSuffix, timeBytes)
		write(checkpointName, ckBytes)
		cfg := DefaultConfig()
		cfg.Logger = testLogger(t)
		cfg.MaxIndexBytes = 4096
		l, err := Open(dir, cfg)
		if err != nil {
			return
		}
		defer l.Close()
		off := l.LogStartOffset()
		for off < l.LogEndOffset() {
			reg, err := l.Read(off, 1<<16, -1)
			if err != nil || reg.Empty() {
				break
			}
			b, err := reg.Bytes()
			reg.Release()
			if err != nil {
				break
			}
			next := off
			it := newIterForFuzz(b)
			for it.Next() {
				next = it.Header().LastOffset() + 1
			}
			if next <= off {
				break
			}
			off = next
		}
		_, _, _ = l.OffsetForTimestamp(0)
		if _, err := l.Append(randomBatch(rand.New(rand.NewPCG(3, 4)), 1, 10), 0); err != nil {
			return
		}
		if err := l.Close(); err != nil {
			return
		}
		l2, err := Open(dir, cfg)
		if err != nil {
			t.Fatalf("reopen after a clean close failed: %v", err)
		}
		l2.Close()
	})
}
