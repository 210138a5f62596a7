// Package cli holds the cobra commands shared by mlog's binaries: `mlog`
// (every command under one root) and the single-purpose binaries
// (`server`, later `producer`, `consumer`, `topic`). Every flag can also be
// set from an MLOG_<FLAG> environment variable (dashes become underscores);
// a flag on the command line wins.
package cli
