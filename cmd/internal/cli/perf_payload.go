package cli

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
)

// minRandomPool is the least random data a run generates up front. It is
// far larger than a producer batch (1 MiB in franz-go by default), so the
// records of one batch never share bytes and a compressor finds nothing to
// remove.
const minRandomPool = 16 << 20

// payloads hands out record values without generating anything per record:
// either windows of one pool of seeded random bytes, or the lines of a
// payload file, cycled. Values alias the pool; nobody may write to them.
type payloads struct {
	// random: value i is pool[off(i) : off(i)+size].
	pool    []byte
	size    int
	offsets int64 // valid window starts: len(pool)-size+1
	step    int64 // ≥ size and coprime to offsets

	// file: value i is lines[i % len(lines)].
	lines [][]byte
}

// randomPayloads makes the values of a random run: size bytes each, from a
// PRNG seeded with seed, so a run can be repeated byte for byte. Value i
// starts step bytes after value i-1 (mod the pool): consecutive values never
// overlap, and since step is coprime to the number of window starts, values
// repeat only after every start has been used once, millions of records
// later.
func randomPayloads(seed int64, size int) *payloads {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], uint64(seed))
	pool := make([]byte, max(minRandomPool, 2*size))
	_, _ = rand.NewChaCha8(key).Read(pool) // never fails
	p := &payloads{pool: pool, size: size, offsets: int64(len(pool) - size + 1), step: int64(size)}
	for gcd(p.step, p.offsets) != 1 {
		p.step++
	}
	return p
}

// filePayloads reads a payload file as kafka-producer-perf-test does with
// its default delimiter: one record per line, trailing empty lines dropped.
func filePayloads(path string) (*payloads, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--payload-file: %w", err)
	}
	lines := bytes.Split(data, []byte("\n"))
	for len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("--payload-file %s: no records (the file has no non-empty line)", path)
	}
	return &payloads{lines: lines}, nil
}

// value is the value of the run's record i (counting over all producers).
func (p *payloads) value(i int64) []byte {
	if p.lines != nil {
		return p.lines[i%int64(len(p.lines))]
	}
	off := (i % p.offsets) * p.step % p.offsets
	return p.pool[off : off+int64(p.size) : off+int64(p.size)]
}

func gcd(a, b int64) int64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maxLen is the longest value the source hands out.
func (p *payloads) maxLen() int {
	if p.lines == nil {
		return p.size
	}
	n := 0
	for _, l := range p.lines {
		n = max(n, len(l))
	}
	return n
}

// describe says what the values are, for the run's header line.
func (p *payloads) describe(seed int64, file string) string {
	if p.lines != nil {
		return fmt.Sprintf("the %d lines of %s, cycled", len(p.lines), file)
	}
	return fmt.Sprintf("%d random bytes (seed %d, %d distinct values)", p.size, seed, p.offsets)
}
