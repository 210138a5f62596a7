package storage

import "errors"

var (
	// ErrOffsetOutOfRange means an offset below the log start offset or above
	// the log end offset was asked for (Kafka OFFSET_OUT_OF_RANGE).
	ErrOffsetOutOfRange = errors.New("storage: offset out of range")
	// ErrBatchTooLarge means a batch is bigger than Config.MaxBatchBytes
	// (Kafka MESSAGE_TOO_LARGE).
	ErrBatchTooLarge = errors.New("storage: batch too large")
	// ErrOffsetMismatch means a replicated batch does not start at the log
	// end offset (or, in a compacted log, above it).
	ErrOffsetMismatch = errors.New("storage: replicated batch does not start at the log end offset")
	// ErrClosed means the log was closed.
	ErrClosed = errors.New("storage: log closed")
	// ErrLogFailed means a write fault could not be undone (the partial write
	// could not be truncated away); the log refuses writes until it is
	// reopened, when recovery cuts the torn tail.
	ErrLogFailed = errors.New("storage: log failed, reopen to recover")
	// ErrNotDurable means offsets a caller waited on were truncated away before
	// they were fsynced: a sync failed, or the log was truncated.
	ErrNotDurable = errors.New("storage: offsets truncated before they were durable")
	// ErrCorruptSegment means a segment that recovery trusted holds bytes that
	// are not a valid batch.
	ErrCorruptSegment = errors.New("storage: corrupt segment")
	// ErrCorruptIndex means an index file is inconsistent with its log; it is
	// rebuilt, so callers never see this error.
	ErrCorruptIndex = errors.New("storage: corrupt index")
	// ErrLogChanged means segments were deleted or truncated during a scan
	// that needed them; scan again.
	ErrLogChanged = errors.New("storage: log changed during scan")
	// ErrInvalidConfig means a Config failed Validate.
	ErrInvalidConfig = errors.New("storage: invalid config")
)
