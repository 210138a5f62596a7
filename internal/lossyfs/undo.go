package lossyfs

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// blockSize is the unit in which undo logs save durable bytes.
const blockSize = 4096

// fileKey names a backing inode, which outlives renames and is shared by
// hard links. An undo log holds the inode open, so its number cannot be
// reused while the log exists.
type fileKey struct{ dev, ino uint64 }

func keyOf(f *os.File) (fileKey, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileKey{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileKey{}, fmt.Errorf("lossyfs: no inode number for %s", f.Name())
	}
	return fileKey{dev: st.Dev, ino: st.Ino}, nil
}

// undoLog is what it takes to put one file back to its state at its last
// fsync. Its fields are guarded by mu, except written, which Unsynced reads.
type undoLog struct {
	mu      sync.Mutex
	name    string   // backing path when the log began, for errors
	f       *os.File // the backing file, read-write
	durable int64    // length at the last fsync
	saved   map[int64][]byte
	written atomic.Int64 // bytes written since the last fsync
	// retired is set once the log left FS.logs (fsync, unlink, power
	// loss): a change that finds it set must start a new log.
	retired bool
}

// save keeps the durable bytes of every block in [off, end) not saved yet,
// before they change. Caller holds mu.
func (u *undoLog) save(off, end int64) error {
	end = min(end, u.durable)
	for b := off / blockSize; b*blockSize < end; b++ {
		if _, ok := u.saved[b]; ok {
			continue
		}
		// Every change to this block since the last fsync would have
		// saved it first, so the backing file still holds it whole.
		buf := make([]byte, min(blockSize, u.durable-b*blockSize))
		if _, err := u.f.ReadAt(buf, b*blockSize); err != nil {
			return fmt.Errorf("lossyfs: save block %d of %s: %w", b, u.name, err)
		}
		u.saved[b] = buf
	}
	return nil
}

// write is pwrite. Caller holds mu.
func (u *undoLog) write(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, syscall.EINVAL
	}
	if err := u.save(off, off+int64(len(p))); err != nil {
		return 0, err
	}
	n, err := u.f.WriteAt(p, off)
	u.written.Add(int64(n))
	return n, err
}

// truncate is ftruncate. Caller holds mu.
func (u *undoLog) truncate(size int64) error {
	if size < 0 {
		return syscall.EINVAL
	}
	if err := u.save(size, u.durable); err != nil {
		return err
	}
	return u.f.Truncate(size)
}

// allocate is fallocate for the modes that change no byte of the file: mode
// 0 (which may only extend it, with zeros that PowerLoss cuts off like any
// unsynced extension) and FALLOC_FL_KEEP_SIZE. Caller holds mu.
func (u *undoLog) allocate(off, n int64, mode uint32) error {
	return syscall.Fallocate(int(u.f.Fd()), mode, off, n)
}

// restore puts the file back to its durable image. Caller holds mu.
func (u *undoLog) restore() error {
	var errs []error
	for b, data := range u.saved {
		if _, err := u.f.WriteAt(data, b*blockSize); err != nil {
			errs = append(errs, err)
		}
	}
	if err := u.f.Truncate(u.durable); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lossyfs: roll back %s to %d bytes: %w", u.name, u.durable, err)
	}
	return nil
}

// unlinked reports whether the file lost its last name.
func (u *undoLog) unlinked() bool {
	fi, err := u.f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// errStale refuses a change that arrives from a mount already gone (a
// request still in flight when PowerLoss unmounted): applying it after the
// rollback would resurrect lost bytes.
var errStale = syscall.EIO

// change runs fn on the undo log of the file key names, beginning one when
// this is the first change since the file's last fsync. reopen opens the
// backing file read-write. gen is the mount the change came through.
func (f *FS) change(gen uint64, key fileKey, reopen func() (*os.File, string, error), fn func(*undoLog) error) error {
	for {
		u, err := f.undoLogFor(gen, key, reopen)
		if err != nil {
			return err
		}
		u.mu.Lock()
		if u.retired {
			u.mu.Unlock()
			continue
		}
		err = fn(u)
		u.mu.Unlock()
		return err
	}
}

func (f *FS) undoLogFor(gen uint64, key fileKey, reopen func() (*os.File, string, error)) (*undoLog, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if gen != f.gen {
		return nil, errStale
	}
	if u := f.logs[key]; u != nil {
		return u, nil
	}
	// No change to this file is in flight (a change needs its log), so
	// its length now is its durable length.
	bf, name, err := reopen()
	if err != nil {
		return nil, err
	}
	fi, err := bf.Stat()
	if err != nil {
		_ = bf.Close()
		return nil, err
	}
	u := &undoLog{name: name, f: bf, durable: fi.Size(), saved: make(map[int64][]byte)}
	f.logs[key] = u
	return u, nil
}

// synced makes the file key names durable as it is now.
func (f *FS) synced(key fileKey) {
	f.mu.Lock()
	u := f.logs[key]
	delete(f.logs, key)
	f.mu.Unlock()
	if u != nil {
		u.retire(false)
	}
}

// forgetUnlinked drops the undo logs of files that have no name left: with
// metadata durable at once, they are gone whatever power does.
func (f *FS) forgetUnlinked() {
	f.mu.Lock()
	var gone []*undoLog
	for key, u := range f.logs {
		if u.unlinked() {
			delete(f.logs, key)
			gone = append(gone, u)
		}
	}
	f.mu.Unlock()
	for _, u := range gone {
		u.retire(false)
	}
}

// takeLogs empties the set of undo logs and starts a new mount generation,
// so that no request of the old mount begins another.
func (f *FS) takeLogs() map[fileKey]*undoLog {
	f.mu.Lock()
	defer f.mu.Unlock()
	logs := f.logs
	f.logs = make(map[fileKey]*undoLog)
	f.gen++
	return logs
}

// retire closes u once no change runs on it, rolling the file back first
// when rollback is set.
func (u *undoLog) retire(rollback bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.retired = true
	var err error
	if rollback {
		err = u.restore()
	}
	if cerr := u.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("lossyfs: close %s: %w", u.name, cerr)
	}
	return err
}
