// Package storage owns one partition replica's log on disk: segments of Kafka
// v2 record batches, their sparse memory-mapped indexes, group-commit fsync,
// crash recovery, truncation and retention. It knows nothing of networking,
// Raft or Kafka requests; the batch codec lives in storage/batch.
//
// # Directory
//
// A log is one directory (the broker names it <topic>-<partition>):
//
//	00000000000000000000.log        batches, appended (name: base offset, %020d)
//	00000000000000000000.index      sparse offset index
//	00000000000000000000.timeindex  sparse time index
//	00000000000000001234.log        next segment, base offset 1234, ...
//	log.checkpoint                  recovery point, log start offset, clean flag
//
// Files ending in .tmp are leftovers of an interrupted atomic write and are
// removed on open, as are index files whose .log is missing.
//
// # .log
//
// Record batches exactly as the producer sent them, except that baseOffset
// (bytes 0..7) and partitionLeaderEpoch (bytes 12..15) are rewritten in place
// on append; neither is covered by the CRC. See package batch for the batch
// layout. Batches are contiguous from byte 0; offsets ascend; a batch's
// relative offset (lastOffset - segment base) fits in a uint32 and the file in
// an int32, so index entries can be 32-bit.
//
// # .index (entries of 8 bytes, big-endian)
//
//	0  uint32  relative offset: batch baseOffset - segment base offset
//	4  uint32  byte position of that batch in the .log
//
// One entry after every index.interval.bytes of log (the entry names the batch
// that crossed the interval). Entries ascend strictly in both fields. The
// active segment's file is memory-mapped at what a full segment can need —
// (segment.bytes / index.interval.bytes + 2) entries, within
// segment.index.bytes — and gets disk blocks as entries arrive (fallocate,
// 8 KiB first, doubling, so a full disk fails an allocation rather than a
// store through the mapping); the unused tail is zeros. On roll and close the file is
// cut to entries*8. Lookup of offset o: binary search for the last entry whose
// relative offset <= o - base, then walk batch headers from its position to
// the first batch whose last offset >= o.
//
// # .timeindex (entries of 12 bytes, big-endian)
//
//	0  int64   largest batch maxTimestamp in the segment up to this batch
//	8  uint32  relative offset of the batch (its baseOffset - segment base)
//
// Written beside .index entries when the largest timestamp grew, and once more
// on roll and close, so the last entry holds the segment's largest timestamp
// (retention.ms reads it there after a reopen). Timestamps ascend strictly.
// A search for timestamp t starts at the last entry whose timestamp < t: no
// batch up to it holds a record at or after t.
//
// # log.checkpoint (32 bytes, big-endian)
//
//	 0  uint32  magic 0x4d4c4350 ("MLCP")
//	 4  uint16  version 1
//	 6  uint16  flags: bit 0 = clean shutdown
//	 8  int64   recovery point: segments ending at or below it are fsynced,
//	            indexes included
//	16  int64   log start offset
//	24  uint32  reserved, zero
//	28  uint32  CRC-32C of bytes 0..27
//
// Always replaced atomically: write <name>.tmp, fsync, rename, fsync the
// directory. Open rewrites it with the clean flag off before accepting
// writes; Close rewrites it with the flag on after fsyncing everything.
//
// # Recovery
//
// After a clean close Open maps nothing: it opens the .log files, maps the
// active segment's indexes and walks the batch headers after its last index
// entry to find the log end offset. Other segments' indexes load on first
// read and are checked then (whole entries, ascending, inside the log);
// inconsistent or missing ones are rebuilt from the log.
//
// After a crash (no clean flag, or no readable checkpoint) every segment that
// ends above the recovery point, and always the active one, is read batch by
// batch: header, exact length, CRC-32C, offsets ascending. The file is cut at
// the first batch that fails (a torn or corrupt tail), later segments are
// removed (offsets must stay dense), and the indexes are rebuilt. A read error
// (EIO) stops Open instead: only damaged bytes are cut, never unread ones.
// Segments wholly below the checkpoint's log start offset (retention was
// deleting them) are removed.
//
// # Durability
//
// Append writes with pwrite and returns; the batch is readable at once.
// WaitDurable asks the flusher goroutine for an fsync and waits for it; one
// fsync covers every batch written before it started (group commit). The
// recovery point moves when a rolled segment and its indexes are fsynced.
// If an fsync fails, the kernel may already have dropped the dirty pages and
// will not say so twice, so the log is cut back to the last durable offset
// and waiters above it get ErrNotDurable. If a write fails, its partial bytes
// are truncated away; if that also fails the log refuses writes
// (ErrLogFailed) until reopened, when recovery cuts the torn tail.
//
// # Compaction
//
// With cleanup.policy=compact, Compact keeps only each key's latest record in
// the closed, durable segments below the high watermark (never the active
// one, never a record that may still be truncated); a tombstone goes too
// once its segment file was last written more than delete.retention.ms ago
// (the broker's clock; producer timestamps are not trusted for this). Offsets do not change:
// a compacted batch keeps its baseOffset and lastOffsetDelta with fewer
// records, compressed batches are written back uncompressed unless that
// would make them bigger (then they stay whole), an idempotent
// producer's emptied batch stays (with no records) so its sequence
// survives, and a segment left with no batch is deleted. Readers, recovery
// and followers treat the gaps as Kafka does: a read at a missing offset
// starts at the next batch.
//
// A segment is rewritten crash-safely: the new bytes go to
// <base>.log.compact.tmp and are fsynced; the segment's .index and
// .timeindex are removed and the directory fsynced; the .tmp is renamed
// over the .log and the directory fsynced again. A truncation, reset or
// append to the segment while it was being rewritten voids the rewrite. A crash before the rename leaves the old .log (the .tmp
// is removed and the indexes rebuilt on open); after it, the new one.
//
// # Concurrency
//
// One writer (Append, AppendReplicated, Roll, TruncateTo, Reset, Retention,
// Close) at a time, serialised by a mutex. Compact reads and rewrites a
// segment without it and takes it only to swap the new file in. Readers never take it: the segment
// list is an immutable slice swapped atomically, and a segment publishes its
// size and next offset only after a batch and its index entries are written,
// so readers never see half a batch. A Region holds a reference to its
// segment, so retention or truncation unlinks the files but closes them only
// when the last reader releases. A truncation races with readers of the
// truncated range as in Kafka: such a reader may get bytes that are no longer
// in the log (only followers truncate, above the high watermark, which
// consumers never read).
package storage
