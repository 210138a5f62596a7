package storage

import (
	"os"
	"strings"
	"sync"
)

// FaultFS wraps another FS and fails chosen operations, so tests can show what
// the log does when a disk fills up (ENOSPC) or fails (EIO). It is exported for
// the tests of packages above storage.
type FaultFS struct {
	FS

	mu         sync.Mutex
	writeErr   error
	writeShort int // bytes a failing write still writes before it fails
	syncErr    error
	syncSuffix string // syncErr applies only to files named with it ("" for any)
	truncErr   error
	held       chan struct{} // syncs wait while set (HoldSyncs)
}

// NewFaultFS wraps fsys (OSFS when nil).
func NewFaultFS(fsys FS) *FaultFS {
	if fsys == nil {
		fsys = OSFS{}
	}
	return &FaultFS{FS: fsys}
}

// FailNextWrite makes the next WriteAt on any file write the first short bytes
// of its buffer and then return err: a torn write.
func (f *FaultFS) FailNextWrite(err error, short int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writeErr, f.writeShort = err, short
}

// FailNextSync makes the next Sync on any file return err.
func (f *FaultFS) FailNextSync(err error) { f.FailNextSyncOf("", err) }

// FailNextSyncOf makes the next Sync of a file whose name ends with suffix
// return err; syncs of other files (a background flush) go through.
func (f *FaultFS) FailNextSyncOf(suffix string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncErr, f.syncSuffix = err, suffix
}

// HoldSyncs makes every Sync wait until ReleaseSyncs: a disk that holds the
// writes in its cache and has not made them durable yet.
func (f *FaultFS) HoldSyncs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = make(chan struct{})
	}
}

// ReleaseSyncs lets held and later syncs go on.
func (f *FaultFS) ReleaseSyncs() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held != nil {
		close(f.held)
		f.held = nil
	}
}

// FailNextTruncate makes the next Truncate on any file return err.
func (f *FaultFS) FailNextTruncate(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.truncErr = err
}

func (f *FaultFS) take(p *error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := *p
	*p = nil
	return err
}

// OpenFile opens a file whose writes and syncs can be made to fail.
func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	file, err := f.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f}, nil
}

type faultFile struct {
	File
	fs *FaultFS
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	ff.fs.mu.Lock()
	err, short := ff.fs.writeErr, ff.fs.writeShort
	ff.fs.writeErr = nil
	ff.fs.mu.Unlock()
	if err == nil {
		return ff.File.WriteAt(p, off)
	}
	short = min(short, len(p))
	n, werr := ff.File.WriteAt(p[:short], off)
	if werr != nil {
		return n, werr
	}
	return n, &os.PathError{Op: "write", Path: ff.Name(), Err: err}
}

func (ff *faultFile) Sync() error {
	ff.fs.mu.Lock()
	held := ff.fs.held
	ff.fs.mu.Unlock()
	if held != nil {
		<-held
	}
	ff.fs.mu.Lock()
	err := ff.fs.syncErr
	if err != nil && strings.HasSuffix(ff.Name(), ff.fs.syncSuffix) {
		ff.fs.syncErr = nil
	} else {
		err = nil
	}
	ff.fs.mu.Unlock()
	if err != nil {
		return &os.PathError{Op: "sync", Path: ff.Name(), Err: err}
	}
	return ff.File.Sync()
}

func (ff *faultFile) Truncate(size int64) error {
	if err := ff.fs.take(&ff.fs.truncErr); err != nil {
		return &os.PathError{Op: "truncate", Path: ff.Name(), Err: err}
	}
	return ff.File.Truncate(size)
}
