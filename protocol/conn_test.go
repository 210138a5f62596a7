package protocol

import (
	"bytes"
	"io"
	"runtime"
	"testing"
)

// A peer that declares a huge frame and sends a few bytes gets no buffer
// of the declared size: memory follows the bytes that arrive.
func TestReadFrameAllocatesAsBytesArrive(t *testing.T) {
	const declared = 100 << 20
	r := io.LimitReader(bytes.NewReader(make([]byte, 1000)), 1000)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := readFrame(r, declared, nil)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("short frame: %v, want unexpected EOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 4<<20 {
		t.Fatalf("reading 1000 bytes of a %d-byte frame allocated %d bytes", declared, grew)
	}
	full := bytes.Repeat([]byte("abc"), 300_000)
	got, err := readFrame(iotestHalfReader{bytes.NewReader(full)}, len(full), nil)
	if err != nil || !bytes.Equal(got, full) {
		t.Fatalf("whole frame read back wrong: %v (%d bytes)", err, len(got))
	}
}

// iotestHalfReader returns at most 7 KiB per Read, as a slow socket does.
type iotestHalfReader struct{ r io.Reader }

func (h iotestHalfReader) Read(p []byte) (int, error) { return h.r.Read(p[:min(len(p), 7<<10)]) }

// A frame read into a reused buffer big enough for it allocates nothing
// and holds exactly the new bytes; a smaller one is grown.
func TestReadFrameReusesBuffer(t *testing.T) {
	first := bytes.Repeat([]byte("a"), 200_000)
	buf, err := readFrame(iotestHalfReader{bytes.NewReader(first)}, len(first), nil)
	if err != nil || !bytes.Equal(buf, first) {
		t.Fatalf("first frame: %v", err)
	}
	second := bytes.Repeat([]byte("b"), 150_000)
	allocs := testing.AllocsPerRun(10, func() {
		got, err := readFrame(bytes.NewReader(second), len(second), buf[:0])
		if err != nil || !bytes.Equal(got, second) || &got[0] != &buf[0] {
			t.Fatalf("reused frame: %v, same buffer %v", err, len(got) > 0 && &got[0] == &buf[0])
		}
	})
	if allocs > 1 { // the bytes.Reader
		t.Fatalf("reading into a reused buffer: %v allocations", allocs)
	}
	third := bytes.Repeat([]byte("c"), 300_000)
	got, err := readFrame(bytes.NewReader(third), len(third), buf[:0])
	if err != nil || !bytes.Equal(got, third) {
		t.Fatalf("frame bigger than the reused buffer: %v", err)
	}
}

// A frame bigger than the kept buffer is allocated whole while the
// server's budget for frames being read allows, and grows as its bytes
// arrive once it does not: peers announcing big frames and sending nothing
// hold at most the budget between them.
func TestFrameBufferBudget(t *testing.T) {
	s := &Server{}
	c := &conn{s: s, rbuf: make([]byte, 0, 4<<20)}
	if buf, whole := c.frameBuffer(2 << 20); whole != 0 || cap(buf) != 4<<20 {
		t.Fatalf("a frame the kept buffer holds: cap %d, whole %d", cap(buf), whole)
	}
	n := 8 << 20
	buf, whole := c.frameBuffer(n)
	if whole != int64(n) || cap(buf) != n || s.frameBytes.Load() != int64(n) {
		t.Fatalf("a bigger frame within the budget: cap %d, whole %d, budget used %d", cap(buf), whole, s.frameBytes.Load())
	}
	s.frameBytes.Store(frameBudget - int64(n) + 1)
	if buf, whole := c.frameBuffer(n); whole != 0 || cap(buf) != 4<<20 || s.frameBytes.Load() != frameBudget-int64(n)+1 {
		t.Fatalf("a frame past the budget: cap %d, whole %d, budget used %d", cap(buf), whole, s.frameBytes.Load())
	}
}
