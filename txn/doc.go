// Package txn is the transaction coordinator (KIP-98). Transactional id t
// belongs to partition PartitionFor(t, n) of the internal, compacted
// topic __transaction_state; the broker leading that partition coordinates
// t. Each transaction's metadata (producer id and epoch, timeout, status,
// the partitions it wrote to) is a record in that partition in Kafka's own
// schema (TxnMetadataKey/Value), appended with acks=all before the
// coordinator answers, so a broker that takes the partition over replays
// it and finishes what the dead one started.
//
// A transaction moves Empty -> Ongoing (AddPartitionsToTxn,
// AddOffsetsToTxn) -> PrepareCommit or PrepareAbort (EndTxn, or the
// coordinator aborting one that outlived its timeout) -> CompleteCommit or
// CompleteAbort once every partition's leader holds the marker
// (WriteTxnMarkers, sent through Config.WriteMarkers). InitProducerId with
// a transactional id bumps the producer epoch, fencing older instances of
// the producer (zombies), and aborts a transaction they left open.
//
// The package answers kmsg requests with kmsg responses; the broker routes
// them here and supplies each __transaction_state partition as a Log.
package txn
