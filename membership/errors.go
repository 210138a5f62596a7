package membership

import "errors"

var (
	// ErrInvalidConfig is returned (wrapped, with the offending field) by
	// Config.Validate and New when the configuration cannot work.
	ErrInvalidConfig = errors.New("membership: invalid config")

	// ErrClosed is returned by operations on a Membership after Leave or
	// Shutdown.
	ErrClosed = errors.New("membership: closed")
)
