package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// errMalformed marks bytes that are not a Kafka request.
var errMalformed = errors.New("protocol: malformed request")

// requestHeader is the Kafka request header v1 (v2 adds tagged fields).
type requestHeader struct {
	apiKey        int16
	apiVersion    int16
	correlationID int32
	clientID      string
}

// parseHeader reads the fixed part of the header (key, version, correlation
// id, client id). The flexible tail (tagged fields) is skipped by
// skipHeaderTags once the version says the header is v2.
func parseHeader(b []byte) (requestHeader, []byte, error) {
	if len(b) < 10 {
		return requestHeader{}, nil, fmt.Errorf("%w: header needs 10 bytes, have %d", errMalformed, len(b))
	}
	h := requestHeader{
		apiKey:        int16(binary.BigEndian.Uint16(b[0:2])),
		apiVersion:    int16(binary.BigEndian.Uint16(b[2:4])),
		correlationID: int32(binary.BigEndian.Uint32(b[4:8])),
	}
	n := int16(binary.BigEndian.Uint16(b[8:10]))
	rest := b[10:]
	if n > 0 {
		if int(n) > len(rest) {
			return h, nil, fmt.Errorf("%w: client id of %d bytes, %d left", errMalformed, n, len(rest))
		}
		h.clientID, rest = string(rest[:n]), rest[n:]
	} else if n < -1 {
		return h, nil, fmt.Errorf("%w: client id length %d", errMalformed, n)
	}
	return h, rest, nil
}

// skipHeaderTags skips the tagged fields of a v2 request header.
func skipHeaderTags(b []byte) ([]byte, error) {
	n, m := binary.Uvarint(b)
	if m <= 0 {
		return nil, fmt.Errorf("%w: header tag count", errMalformed)
	}
	b = b[m:]
	for range n {
		_, m := binary.Uvarint(b) // tag
		if m <= 0 {
			return nil, fmt.Errorf("%w: header tag", errMalformed)
		}
		b = b[m:]
		size, m := binary.Uvarint(b)
		if m <= 0 || size > uint64(len(b)-m) {
			return nil, fmt.Errorf("%w: header tag size", errMalformed)
		}
		b = b[m+int(size):]
	}
	return b, nil
}

// appendResponseHeader writes the response header: the correlation id, and
// for flexible responses an empty tag section. ApiVersions' response header
// is always v0, whatever the version, so clients can read it before they
// know which versions the broker speaks.
func appendResponseHeader(dst []byte, correlationID int32, flexible bool, apiKey int16) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(correlationID))
	if flexible && apiKey != apiVersionsKey {
		dst = append(dst, 0)
	}
	return dst
}
