package storage

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/mlog/mlog/storage/batch"
)

// scanner walks the batches of one .log file between two positions, reading
// in chunks so that a walk over many small batches costs few syscalls.
type scanner struct {
	f        File
	pos, end int64  // next batch position, end of the region
	buf      []byte // chunk read from the file
	bufStart int64  // file position of buf[0]
	full     bool   // validate whole batches (length and CRC), not only headers

	// current batch
	batchPos int64
	hdr      batch.Header
	bytes    []byte // whole batch when full, else its header
	err      error
}

// lookupBufs recycles the small buffers of header walks, which run on every
// fetch.
var lookupBufs = sync.Pool{New: func() any { b := make([]byte, 0, lookupBufSize); return &b }}

func newScanner(f File, start, end int64, bufSize int, full bool) *scanner {
	var buf []byte
	if bufSize == lookupBufSize {
		buf = (*lookupBufs.Get().(*[]byte))[:0]
	} else {
		buf = make([]byte, 0, bufSize)
	}
	return &scanner{f: f, pos: start, end: end, buf: buf, bufStart: start, full: full}
}

// close returns a pooled buffer; the scanner must not be used after.
func (s *scanner) close() {
	if cap(s.buf) == lookupBufSize {
		b := s.buf[:0]
		lookupBufs.Put(&b)
	}
	s.buf = nil
}

// window makes file bytes [pos, pos+n) available in s.buf and returns them.
func (s *scanner) window(pos int64, n int) ([]byte, error) {
	if pos >= s.bufStart && pos+int64(n) <= s.bufStart+int64(len(s.buf)) {
		off := pos - s.bufStart
		return s.buf[off : off+int64(n)], nil
	}
	want := max(n, cap(s.buf))
	if rem := s.end - pos; int64(want) > rem {
		want = int(rem)
	}
	if want < n {
		return nil, io.ErrUnexpectedEOF
	}
	if cap(s.buf) < want {
		s.buf = make([]byte, 0, want)
	}
	s.buf = s.buf[:want]
	s.bufStart = pos
	m, err := s.f.ReadAt(s.buf, pos)
	s.buf = s.buf[:m]
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return s.buf[:n], nil
}

// next moves to the next batch. It returns false at the end of the region or
// at the first batch that is torn or invalid; err() then says which.
func (s *scanner) next() bool {
	if s.err != nil || s.pos >= s.end {
		return false
	}
	h, err := s.window(s.pos, batch.HeaderSize)
	if err != nil {
		s.err = s.readErr("header", err)
		return false
	}
	hdr, err := batch.ParseHeader(h)
	if err != nil {
		s.err = fmt.Errorf("at position %d: %w", s.pos, err)
		return false
	}
	if s.pos+hdr.Size() > s.end {
		s.err = fmt.Errorf("%w: batch at %d needs %d bytes, %d left", batch.ErrTruncated, s.pos, hdr.Size(), s.end-s.pos)
		return false
	}
	s.bytes = h
	if s.full {
		b, err := s.window(s.pos, int(hdr.Size()))
		if err != nil {
			s.err = s.readErr("batch", err)
			return false
		}
		if _, err := batch.Validate(b); err != nil {
			s.err = fmt.Errorf("at position %d: %w", s.pos, err)
			return false
		}
		s.bytes = b
	}
	s.batchPos, s.hdr = s.pos, hdr
	s.pos += hdr.Size()
	return true
}

// readErr tells a torn tail (batch.ErrTruncated) from an I/O error, which
// recovery must never mistake for damage to cut away.
func (s *scanner) readErr(what string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s at %d", batch.ErrTruncated, what, s.pos)
	}
	return fmt.Errorf("storage: read %s at %d: %w", s.f.Name(), s.pos, err)
}

// damaged reports whether err from a scan means bad bytes in the file (cut
// them) rather than a failing disk (stop).
func damaged(err error) bool {
	return errors.Is(err, batch.ErrTruncated) || errors.Is(err, batch.ErrCorrupt) ||
		errors.Is(err, batch.ErrUnsupportedMagic) || errors.Is(err, batch.ErrInvalidRecordCount) ||
		errors.Is(err, errOffsetsOutOfOrder)
}
