// Package protocol is mlog's Kafka listener: it frames requests (4-byte size,
// request header v1/v2), decodes and encodes bodies with franz-go's kmsg, and
// dispatches to one handler per API key. Each handler file (NN_name.go,
// numbered by API key) registers the versions it handles; ApiVersions is
// built from that registry, so nothing is advertised that is not implemented.
//
// Per connection one reader goroutine reads and dispatches requests in order,
// and one writer goroutine writes responses in request order. A handler does
// its ordered work (a produce's append) on the reader goroutine and may
// return the rest (waiting for fsync, a fetch's long poll) to run on its own
// goroutine, so pipelined requests overlap while responses stay in order.
// Produce with acks=0 gets no response. Fetch responses carry record bytes
// straight from segment files with sendfile on plain TCP.
//
// Bad input never hurts other clients: a frame that is negative, over
// MaxRequestBytes or cut short closes that connection with a logged reason; a
// body that does not decode, or an API key or version not served, closes it
// too (as Kafka does), except ApiVersions, which answers an unknown version
// in v0 with UNSUPPORTED_VERSION and the supported ranges. Domain errors map
// to Kafka error codes in errors.go, in one place. A connection's waiting
// replies (long polls, fsync waits) end when it does.
//
// The package never opens files: partitions hand it storage regions.
package protocol
