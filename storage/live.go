package storage

// Changes to an open log that Kafka's admin APIs make: new settings when
// a topic's configs are altered (IncrementalAlterConfigs), and a log start
// offset raised by DeleteRecords.

import (
	"fmt"
)

// SetConfig applies the settings a topic config may change to the open
// log: retention (retention.ms, retention.bytes) and the cleanup policy
// from the next retention or compaction pass, segment.bytes and
// segment.ms from the next append's roll decision, max.message.bytes from
// the next append, and the index settings from the next new segment.
// Everything else (the file system, clock, syncer, logger) stays as
// opened.
func (l *Log) SetConfig(next Config) error {
	if err := next.Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &l.cfg
	c.SegmentBytes, c.SegmentMs, c.IndexIntervalBytes, c.MaxIndexBytes = next.SegmentBytes, next.SegmentMs, next.IndexIntervalBytes, next.MaxIndexBytes
	c.RetentionMs, c.RetentionBytes, c.MaxBatchBytes = next.RetentionMs, next.RetentionBytes, next.MaxBatchBytes
	c.Compact, c.KeepSegments, c.DeleteRetention = next.Compact, next.KeepSegments, next.DeleteRetention
	seg := *c
	l.segCfg = &seg
	l.maxBatch.Store(c.MaxBatchBytes)
	return nil
}

// AdvanceStart raises the log start offset to offset (DeleteRecords):
// offsets below it are no longer readable, and whole segments below it are
// deleted; the segment holding offset stays, read from offset on. The new
// start is checkpointed before any file goes. An offset at or below the
// start changes nothing; one past the log end offset is refused.
func (l *Log) AdvanceStart(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.writableLocked(); err != nil {
		return err
	}
	if offset <= l.start.Load() {
		return nil
	}
	if leo := l.leo.Load(); offset > leo {
		return fmt.Errorf("%w: log start %d past the log end offset %d", ErrOffsetOutOfRange, offset, leo)
	}
	old := l.start.Load()
	l.start.Store(offset)
	if err := writeCheckpoint(l.cfg.FS, l.dir, l.checkpointLocked(false)); err != nil {
		l.start.Store(old)
		return err
	}
	segs := l.segments()
	n := 0
	for n < len(segs)-1 && segs[n+1].base <= offset {
		n++
	}
	if n > 0 {
		l.publish(segs[n:])
		l.dropSegmentsLocked(segs[:n])
	}
	l.log.Info("log start offset advanced", "log_start_offset", offset, "segments_deleted", n)
	return nil
}
