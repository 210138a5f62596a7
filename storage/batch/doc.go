// Package batch owns the Kafka record batch format (magic 2) at the header
// level: it decodes and checks the fixed 61-byte header, verifies the CRC,
// walks concatenated batches, and rewrites the two fields the broker assigns
// after the producer sealed the batch.
//
// Layout, all integers big-endian:
//
//	offset  size  field
//	     0     8  baseOffset            assigned by the broker on append
//	     8     4  batchLength           bytes after this field; batch = batchLength+12
//	    12     4  partitionLeaderEpoch  assigned by the broker on append
//	    16     1  magic                 always 2
//	    17     4  crc                   CRC-32C (Castagnoli) of bytes 21..end
//	    21     2  attributes            bits 0-2 codec, 3 LogAppendTime, 4 transactional, 5 control
//	    23     4  lastOffsetDelta
//	    27     8  baseTimestamp
//	    35     8  maxTimestamp
//	    43     8  producerId            -1 when not idempotent
//	    51     2  producerEpoch
//	    53     4  baseSequence
//	    57     4  recordCount
//	    61     -  records               possibly compressed
//
// The CRC deliberately starts after the CRC field and so excludes baseOffset,
// batchLength, partitionLeaderEpoch and magic: the broker can stamp offsets and
// epochs into a producer's batch without recomputing it. SetBaseOffset and
// SetPartitionLeaderEpoch rely on that.
//
// Rules checked: ParseHeader checks magic, that batchLength covers the fixed
// header and that lastOffsetDelta is not negative. Validate adds an exact
// length and the CRC. CheckProducerBatch adds what only holds for batches fresh
// from a producer (dense offsets, no control batches, consistent idempotence
// fields); replicated or compacted batches legitimately break those rules.
//
// The package never decompresses. Records are only read by OffsetForTimestamp,
// and only when the batch is uncompressed; for compressed batches it answers
// from the header alone.
package batch
