package batch

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Kafka's compression codecs (attributes bits 0..2).
const (
	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLZ4    = 3
	codecZstd   = 4
)

// maxDecompressed bounds what one batch may expand to, so that a hostile
// batch cannot exhaust memory when compaction looks inside it.
const maxDecompressed = 256 << 20

// xerialMagic starts snappy data framed by the Java client's xerial
// library: 8 bytes of magic, then two int32 versions, then chunks of
// (int32 length, snappy block).
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

var zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxDecompressed))

// decompress returns the records region of a batch compressed with codec.
// Only log compaction looks inside compressed batches; the write and read
// paths never do.
func decompress(codec int8, data []byte) ([]byte, error) {
	var out []byte
	var err error
	switch codec {
	case codecNone:
		return data, nil
	case codecGzip:
		var r *gzip.Reader
		if r, err = gzip.NewReader(bytes.NewReader(data)); err == nil {
			out, err = readLimited(r)
		}
	case codecSnappy:
		out, err = unsnappy(data)
	case codecLZ4:
		out, err = readLimited(lz4.NewReader(bytes.NewReader(data)))
	case codecZstd:
		out, err = zstdDecoder.DecodeAll(data, nil)
	default:
		err = fmt.Errorf("unknown codec %d", codec)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: decompress (codec %d): %v", ErrCorrupt, codec, err)
	}
	return out, nil
}

func readLimited(r io.Reader) ([]byte, error) {
	out, err := io.ReadAll(io.LimitReader(r, maxDecompressed+1))
	if err == nil && len(out) > maxDecompressed {
		err = fmt.Errorf("more than %d bytes", maxDecompressed)
	}
	return out, err
}

// unsnappy decodes a raw snappy block or xerial-framed chunks.
func unsnappy(data []byte) ([]byte, error) {
	block := func(b []byte) ([]byte, error) {
		n, err := s2.DecodedLen(b)
		if err != nil {
			return nil, err
		}
		if n > maxDecompressed {
			return nil, fmt.Errorf("block of %d bytes", n)
		}
		return s2.Decode(nil, b)
	}
	if !bytes.HasPrefix(data, xerialMagic) {
		return block(data)
	}
	if len(data) < 16 {
		return nil, io.ErrUnexpectedEOF
	}
	var out []byte
	for rest := data[16:]; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, io.ErrUnexpectedEOF
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return nil, io.ErrUnexpectedEOF
		}
		chunk, err := block(rest[4 : 4+n])
		if err != nil {
			return nil, err
		}
		if len(out)+len(chunk) > maxDecompressed {
			return nil, fmt.Errorf("more than %d bytes", maxDecompressed)
		}
		out = append(out, chunk...)
		rest = rest[4+n:]
	}
	return out, nil
}
