// Package broker is one mlog node: its Config, the topics it holds, and the
// start-up of every part in order (data directory, metadata, partitions,
// Kafka listener, background retention) with shutdown in reverse. It is the
// only package that knows every other one; it implements protocol.Backend.
//
// Until the cluster layer arrives, topic metadata (names, ids, partition
// counts, configs) and the producer-id allocator live in
// <data-dir>/metadata.json, replaced atomically on every change, and the
// node identity in <data-dir>/meta.properties, written once.
package broker
