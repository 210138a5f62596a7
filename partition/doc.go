// Package partition owns one replica of one partition: its storage.Log, the
// high watermark consumers may read up to, and the idempotent-producer state
// (per producer id, its epoch and last five batches' sequence ranges), which
// is rebuilt from the log's batch headers on open.
//
// On a single node the high watermark is the log end offset, or, when acks
// wait for fsync (the default), the durable offset: a consumer never reads a
// batch a crash could still take back. Replication (a later layer) moves it
// by the in-sync replicas' log end offsets instead.
//
// The package never touches the network; errors are sentinels the protocol
// layer maps to Kafka error codes.
package partition
