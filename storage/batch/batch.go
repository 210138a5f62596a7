package batch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

const (
	// HeaderSize is the number of bytes before the records.
	HeaderSize = 61
	// LengthPrefixSize is the number of bytes not counted by batchLength
	// (baseOffset and batchLength itself).
	LengthPrefixSize = 12
)

// Byte offsets of the header fields.
const (
	offBatchLength   = 8
	offLeaderEpoch   = 12
	offMagic         = 16
	offCRC           = 17
	offAttributes    = 21
	offLastDelta     = 23
	offBaseTimestamp = 27
	offMaxTimestamp  = 35
	offProducerID    = 43
	offProducerEpoch = 51
	offBaseSequence  = 53
	offRecordCount   = 57

	// crcStart is where the checksummed region begins.
	crcStart = offAttributes
)

const (
	attrCompressionMask = 0x07
	attrLogAppendTime   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var (
	// ErrTruncated means there are fewer bytes than a header, or than
	// batchLength says the batch occupies.
	ErrTruncated = errors.New("batch: truncated")
	// ErrCorrupt means the bytes are not a well-formed batch: CRC mismatch,
	// batchLength smaller than the fixed header, malformed records, or
	// trailing bytes where exactly one batch was expected.
	ErrCorrupt = errors.New("batch: corrupt")
	// ErrUnsupportedMagic means the data is not a v2 batch (magic != 2),
	// for example a legacy message set.
	ErrUnsupportedMagic = errors.New("batch: unsupported magic")
	// ErrInvalidRecordCount means a producer batch has no records or its
	// offsets are not dense (lastOffsetDelta != recordCount-1).
	ErrInvalidRecordCount = errors.New("batch: invalid record count")
	// ErrControlBatch means a client sent a control batch; only the broker
	// may write those.
	ErrControlBatch = errors.New("batch: control batch from client")
	// ErrInvalidSequence means an idempotent batch (producerId >= 0) has a
	// negative baseSequence or producerEpoch.
	ErrInvalidSequence = errors.New("batch: invalid producer sequence")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is the decoded fixed part of a batch.
type Header struct {
	BaseOffset           int64
	BatchLength          int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	RecordCount          int32
}

// Size is the number of bytes the whole batch occupies.
func (h Header) Size() int64 { return int64(h.BatchLength) + LengthPrefixSize }

// LastOffset is the offset of the last record, which compaction may have
// removed; the batch still owns the offset.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
func (h Header) Compression() int8 { return int8(h.Attributes & attrCompressionMask) }

// LogAppendTime reports whether record timestamps are replaced by the
// broker's append time (held in MaxTimestamp).
func (h Header) LogAppendTime() bool { return h.Attributes&attrLogAppendTime != 0 }

// Transactional reports whether the batch is part of a transaction.
func (h Header) Transactional() bool { return h.Attributes&attrTransactional != 0 }

// Control reports whether the batch holds transaction markers rather than
// user records.
func (h Header) Control() bool { return h.Attributes&attrControl != 0 }

// Idempotent reports whether the producer fields are meaningful.
func (h Header) Idempotent() bool { return h.ProducerID >= 0 }

// ParseHeader decodes the header at the start of b. b may be a prefix of the
// batch or extend past it; only HeaderSize bytes are read.
func ParseHeader(b []byte) (Header, error) {
	if len(b) <= offMagic {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d to read magic", ErrTruncated, len(b), offMagic+1)
	}
	// Magic first: a legacy message set is usually shorter than a v2 header,
	// and "wrong format" is the more useful diagnosis than "too short".
	if m := int8(b[offMagic]); m != 2 {
		return Header{}, fmt.Errorf("%w: %d", ErrUnsupportedMagic, m)
	}
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, need %d for header", ErrTruncated, len(b), HeaderSize)
	}
	be := binary.BigEndian
	h := Header{
		BaseOffset:           int64(be.Uint64(b)),
		BatchLength:          int32(be.Uint32(b[offBatchLength:])),
		PartitionLeaderEpoch: int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:                int8(b[offMagic]),
		CRC:                  be.Uint32(b[offCRC:]),
		Attributes:           int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta:      int32(be.Uint32(b[offLastDelta:])),
		BaseTimestamp:        int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:         int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:           int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:        int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:         int32(be.Uint32(b[offBaseSequence:])),
		RecordCount:          int32(be.Uint32(b[offRecordCount:])),
	}
	if h.BatchLength < HeaderSize-LengthPrefixSize {
		return Header{}, fmt.Errorf("%w: batchLength %d below fixed header size %d", ErrCorrupt, h.BatchLength, HeaderSize-LengthPrefixSize)
	}
	if h.LastOffsetDelta < 0 {
		return Header{}, fmt.Errorf("%w: negative lastOffsetDelta %d", ErrCorrupt, h.LastOffsetDelta)
	}
	return h, nil
}

// Validate checks that b is exactly one whole batch with a matching CRC.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return Header{}, err
	}
	switch n := int64(len(b)); {
	case n < h.Size():
		return Header{}, fmt.Errorf("%w: %d bytes, batch needs %d", ErrTruncated, n, h.Size())
	case n > h.Size():
		return Header{}, fmt.Errorf("%w: %d trailing bytes after batch", ErrCorrupt, n-h.Size())
	}
	if got := crc32.Checksum(b[crcStart:], castagnoli); got != h.CRC {
		return Header{}, fmt.Errorf("%w: crc %#08x, header says %#08x", ErrCorrupt, got, h.CRC)
	}
	return h, nil
}

// CheckProducerBatch applies the rules that hold for batches sent by a
// producer but not for replicated ones, which may be compacted or be control
// batches written by the broker.
func CheckProducerBatch(h Header) error {
	if h.RecordCount < 1 {
		return fmt.Errorf("%w: recordCount %d", ErrInvalidRecordCount, h.RecordCount)
	}
	if h.LastOffsetDelta != h.RecordCount-1 {
		return fmt.Errorf("%w: lastOffsetDelta %d with recordCount %d", ErrInvalidRecordCount, h.LastOffsetDelta, h.RecordCount)
	}
	if h.Control() {
		return ErrControlBatch
	}
	if h.Transactional() && !h.Idempotent() {
		return fmt.Errorf("%w: a transactional batch without a producer id", ErrInvalidSequence)
	}
	if h.Idempotent() && (h.BaseSequence < 0 || h.ProducerEpoch < 0) {
		return fmt.Errorf("%w: producerId %d epoch %d baseSequence %d", ErrInvalidSequence, h.ProducerID, h.ProducerEpoch, h.BaseSequence)
	}
	return nil
}

// SetBaseOffset stamps the batch's first offset. The field is outside the
// CRC, so the batch stays valid. Slices too short to hold it are left alone.
func SetBaseOffset(b []byte, offset int64) {
	if len(b) >= offBatchLength {
		binary.BigEndian.PutUint64(b, uint64(offset))
	}
}

// SetPartitionLeaderEpoch stamps the leader epoch. The field is outside the
// CRC, so the batch stays valid. Slices too short to hold it are left alone.
func SetPartitionLeaderEpoch(b []byte, epoch int32) {
	if len(b) >= offMagic {
		binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
	}
}

// Iter walks consecutive batches in a byte region such as a segment read or
// a fetch response.
type Iter struct {
	b       []byte
	next    int
	off     int
	cur     []byte
	h       Header
	err     error
	partial bool
	done    bool
}

// NewIter returns an iterator over the batches in b. It aliases b.
func NewIter(b []byte) *Iter { return &Iter{b: b} }

// Next advances to the next whole batch. It returns false at the end of the
// region, on a partial trailing batch (Partial reports true, Err nil: fetch
// responses are cut at a byte limit and legitimately end that way), or on a
// header that does not parse (Err non-nil). CRCs are not checked, so callers
// that only need offsets do not pay for hashing.
func (it *Iter) Next() bool {
	it.cur, it.h = nil, Header{}
	if it.done {
		return false
	}
	it.off = it.next
	rest := it.b[it.next:]
	if len(rest) == 0 {
		it.done = true
		return false
	}
	h, err := ParseHeader(rest)
	if err != nil {
		it.done = true
		if errors.Is(err, ErrTruncated) {
			it.partial = true
			return false
		}
		it.err = fmt.Errorf("batch at byte %d: %w", it.off, err)
		return false
	}
	if h.Size() > int64(len(rest)) {
		it.done, it.partial = true, true
		return false
	}
	n := int(h.Size())
	// Cap the slice so a caller appending to one batch cannot overwrite the next.
	it.cur, it.h = rest[:n:n], h
	it.next += n
	return true
}

// Batch returns the current batch's bytes, aliasing the region.
func (it *Iter) Batch() []byte { return it.cur }

// Header returns the current batch's header.
func (it *Iter) Header() Header { return it.h }

// Offset returns the byte position of the current batch within the region.
func (it *Iter) Offset() int { return it.off }

// Err returns the error that ended iteration, if any.
func (it *Iter) Err() error { return it.err }

// Partial reports whether iteration ended on an incomplete trailing batch.
func (it *Iter) Partial() bool { return it.partial }

// OffsetForTimestamp returns the offset of the first record in b whose
// timestamp is >= ts; ok is false when no record qualifies. b should be a
// validated batch; the CRC is not rechecked.
//
// Compressed batches cannot be looked into without decompressing, so they
// answer BaseOffset whenever MaxTimestamp >= ts: the first record at or after
// ts is somewhere in this batch and a consumer starting at BaseOffset reaches
// it. LogAppendTime batches give every record the time in MaxTimestamp, which
// makes the same answer exact.
func OffsetForTimestamp(b []byte, ts int64) (offset int64, ok bool, err error) {
	h, err := ParseHeader(b)
	if err != nil {
		return 0, false, err
	}
	if int64(len(b)) < h.Size() {
		return 0, false, fmt.Errorf("%w: %d bytes, batch needs %d", ErrTruncated, len(b), h.Size())
	}
	if h.Compression() != 0 || h.LogAppendTime() {
		if h.MaxTimestamp < ts {
			return 0, false, nil
		}
		return h.BaseOffset, true, nil
	}
	if h.RecordCount < 0 {
		return 0, false, fmt.Errorf("%w: recordCount %d", ErrCorrupt, h.RecordCount)
	}
	r := recordReader{b: b[HeaderSize:h.Size()]}
	for i := int32(0); i < h.RecordCount; i++ {
		tsDelta, offDelta, err := r.record()
		if err != nil {
			return 0, false, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
		}
		if offDelta < 0 || offDelta > int64(h.LastOffsetDelta) {
			return 0, false, fmt.Errorf("%w: record %d: offsetDelta %d outside [0, %d]", ErrCorrupt, i, offDelta, h.LastOffsetDelta)
		}
		if h.BaseTimestamp+tsDelta >= ts {
			return h.BaseOffset + offDelta, true, nil
		}
	}
	return 0, false, nil
}

var (
	errBadVarint = errors.New("bad varint")
	errBadLength = errors.New("bad length")
)

// recordReader decodes v2 records. Every read is bounds-checked because the
// input may be arbitrary bytes that merely passed the header checks. The
// first error sticks so a record's fields read as straight-line code.
type recordReader struct {
	b   []byte
	err error
}

// record reads one whole record, requiring its fields to fill exactly its
// declared length so that framing damage is caught at the record it hits.
func (r *recordReader) record() (tsDelta, offDelta int64, err error) {
	n := r.length(false)
	if r.err != nil {
		return 0, 0, r.err
	}
	body := &recordReader{b: r.b[:n]}
	r.b = r.b[n:]
	if len(body.b) == 0 {
		return 0, 0, errBadLength
	}
	body.b = body.b[1:] // attributes: unused by Kafka
	tsDelta = body.varint()
	offDelta = body.varint()
	body.skip(true) // key
	body.skip(true) // value
	for h := body.length(false); h > 0 && body.err == nil; h-- {
		body.skip(false) // header key: never null
		body.skip(true)
	}
	if body.err == nil && len(body.b) != 0 {
		body.err = fmt.Errorf("%w: %d unread bytes in record", errBadLength, len(body.b))
	}
	return tsDelta, offDelta, body.err
}

// varint reads a zigzag varint (Kafka's encoding, same as encoding/binary).
// Kafka's int32 varints are read as int64 too: every one is range-checked
// afterwards (offsets against lastOffsetDelta, lengths against the bytes
// left), so an over-long encoding cannot slip through truncated.
func (r *recordReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errBadVarint
		return 0
	}
	r.b = r.b[n:]
	return v
}

// length reads an int32 varint length that must fit in the remaining bytes;
// -1 (null) is returned as 0 when nullable.
func (r *recordReader) length(nullable bool) int {
	v := r.varint()
	switch {
	case r.err != nil, v == -1 && nullable:
		return 0
	case v < 0 || v > int64(len(r.b)):
		r.err = errBadLength
		return 0
	}
	return int(v)
}

func (r *recordReader) skip(nullable bool) {
	r.b = r.b[r.length(nullable):]
}
