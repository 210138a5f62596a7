package storage

import (
	"fmt"
	"log/slog"
	"math"
	"time"
)

// Config holds one log's settings. The names follow Kafka's topic configs.
type Config struct {
	// SegmentBytes rolls the active segment when a batch would take it past
	// this size (segment.bytes).
	SegmentBytes int64
	// SegmentMs rolls a non-empty active segment when an incoming batch's
	// timestamp is this much later than the segment's first batch's (or, for
	// batches without timestamps, when the segment is this old), as Kafka's
	// segment.ms does.
	SegmentMs time.Duration
	// IndexIntervalBytes is how many log bytes lie between offset index
	// entries (index.interval.bytes).
	IndexIntervalBytes int64
	// MaxIndexBytes bounds each index file (segment.index.bytes); a full
	// index rolls the segment. A file is preallocated only to what a full
	// segment can need (indexBytes), not to this bound.
	MaxIndexBytes int64
	// RetentionMs deletes segments whose newest timestamp is older than this;
	// negative keeps them forever (retention.ms).
	RetentionMs time.Duration
	// RetentionBytes deletes the oldest segments while the log is bigger than
	// this; negative keeps them (retention.bytes).
	RetentionBytes int64
	// MaxBatchBytes refuses bigger batches (max.message.bytes).
	MaxBatchBytes int64
	// Compact lets Compact rewrite closed segments, keeping the latest
	// record per key (cleanup.policy includes compact).
	Compact bool
	// KeepSegments turns retention off (cleanup.policy without delete).
	KeepSegments bool
	// DeleteRetention is how long compaction keeps a tombstone
	// (delete.retention.ms).
	DeleteRetention time.Duration

	// FS is the filesystem seam; OSFS when nil.
	FS FS
	// Syncer, when set, is shared by the logs of one broker so their
	// fsyncs are combined (see Syncer); nil fsyncs each file on its own.
	Syncer *Syncer
	// Logger receives recovery and fault reports; slog.Default when nil.
	Logger *slog.Logger
	// OnChange, when set, is called after the log end offset or the durable
	// offset moved (or a truncation or close). It runs with the log's lock
	// held: it must be quick and must not call back into the log.
	OnChange func()
	// Now is the clock for segment.ms and retention.ms; time.Now when nil.
	Now func() time.Time
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{
		SegmentBytes:       1 << 30,
		SegmentMs:          7 * 24 * time.Hour,
		IndexIntervalBytes: 4096,
		MaxIndexBytes:      10 << 20,
		RetentionMs:        7 * 24 * time.Hour,
		RetentionBytes:     -1,
		MaxBatchBytes:      1048588,
		DeleteRetention:    24 * time.Hour,
	}
}

// Validate checks the settings and fills in the seams left nil.
func (c *Config) Validate() error {
	switch {
	case c.SegmentBytes < 1024 || c.SegmentBytes > math.MaxInt32:
		return fmt.Errorf("%w: segment.bytes %d not in [1024, %d]", ErrInvalidConfig, c.SegmentBytes, math.MaxInt32)
	case c.SegmentMs <= 0:
		return fmt.Errorf("%w: segment.ms %v must be positive", ErrInvalidConfig, c.SegmentMs)
	case c.IndexIntervalBytes < 0:
		return fmt.Errorf("%w: index.interval.bytes %d is negative", ErrInvalidConfig, c.IndexIntervalBytes)
	case c.MaxIndexBytes < 4*timeEntrySize || c.MaxIndexBytes > math.MaxInt32:
		return fmt.Errorf("%w: segment.index.bytes %d not in [%d, %d]", ErrInvalidConfig, c.MaxIndexBytes, 4*timeEntrySize, math.MaxInt32)
	case c.DeleteRetention < 0:
		return fmt.Errorf("%w: delete.retention.ms %v is negative", ErrInvalidConfig, c.DeleteRetention)
	case c.MaxBatchBytes < 61 || c.MaxBatchBytes > math.MaxInt32:
		return fmt.Errorf("%w: max.message.bytes %d not in [61, %d]", ErrInvalidConfig, c.MaxBatchBytes, math.MaxInt32)
	}
	if c.FS == nil {
		c.FS = OSFS{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// indexBytes is how big an index of entrySize entries is preallocated:
// room for one entry per IndexIntervalBytes of a full segment, plus the
// time index's closing entry, within MaxIndexBytes. Preallocation takes
// real disk blocks (a full disk must not fault an mmap store), so sizing
// it to the segment instead of segment.index.bytes (10 MiB) keeps a broker
// with many partitions from spending gigabytes on empty index space.
func (c *Config) indexBytes(entrySize int) int64 {
	e := int64(entrySize)
	if c.IndexIntervalBytes <= 0 {
		return c.MaxIndexBytes // an entry per batch: no bound from the interval
	}
	need := (c.SegmentBytes/c.IndexIntervalBytes + 2) * e
	return min(c.MaxIndexBytes, max(need, 4*e))
}
