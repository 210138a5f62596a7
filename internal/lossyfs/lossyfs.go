package lossyfs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// ErrUnmounted is returned by PowerLoss after Unmount.
var ErrUnmounted = errors.New("lossyfs: not mounted")

// Option configures Mount.
type Option func(*options)

type options struct {
	logger *slog.Logger
	debug  bool
}

// WithLogger sends go-fuse's diagnostics to l (slog.Default otherwise).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDebug logs every FUSE request and reply, for debugging the
// filesystem itself.
func WithDebug() Option { return func(o *options) { o.debug = true } }

// FS is a mounted lossy filesystem.
type FS struct {
	backing, mountpoint string
	opts                options

	mountMu sync.Mutex // serializes Mount, PowerLoss and Unmount
	server  *fuse.Server

	mu sync.Mutex // guards logs and gen
	// logs holds an undo log for every file changed since its last fsync.
	logs map[fileKey]*undoLog
	// gen counts mounts: requests from an earlier one are refused.
	gen uint64
}

// Mount serves a lossy passthrough of backing at mountpoint (both existing
// directories). Everything in backing when it is mounted counts as durable.
func Mount(backing, mountpoint string, opts ...Option) (*FS, error) {
	f := &FS{logs: make(map[fileKey]*undoLog)}
	for _, o := range opts {
		o(&f.opts)
	}
	if f.opts.logger == nil {
		f.opts.logger = slog.Default()
	}
	for _, p := range []*string{&backing, &mountpoint} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return nil, fmt.Errorf("lossyfs: %w", err)
		}
		if fi, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("lossyfs: %w", err)
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("lossyfs: %s is not a directory", abs)
		}
		*p = abs
	}
	f.backing, f.mountpoint = backing, mountpoint
	f.mountMu.Lock()
	defer f.mountMu.Unlock()
	if err := f.mountLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

// mountLocked starts a server for the current generation. Caller holds
// mountMu.
func (f *FS) mountLocked() error {
	root, err := fs.NewLoopbackRoot(f.backing)
	if err != nil {
		return fmt.Errorf("lossyfs: %w", err)
	}
	loop := root.(*fs.LoopbackNode)
	f.mu.Lock()
	n := &node{LoopbackNode: loop, fsys: f, gen: f.gen}
	f.mu.Unlock()
	loop.RootData.RootNode = n
	// Every change passes through the mount, so the kernel may cache
	// what it was told for a while.
	timeout := time.Second
	logger := slog.NewLogLogger(f.opts.logger.Handler(), slog.LevelWarn)
	server, err := fs.Mount(f.mountpoint, n, &fs.Options{
		EntryTimeout: &timeout,
		AttrTimeout:  &timeout,
		Logger:       logger,
		MountOptions: fuse.MountOptions{
			FsName: f.backing,
			Name:   "lossyfs",
			// Not DirectMount: in go-fuse v2.12.1 it leaves /dev/fuse
			// open across exec, and a child holding it keeps the
			// connection alive after this process dies, so the child
			// hangs forever closing its files when killed. fusermount's
			// descriptor is made close-on-exec.
			Debug:  f.opts.debug,
			Logger: logger,
		},
	})
	if err != nil {
		return fmt.Errorf("lossyfs: mount %s at %s: %w", f.backing, f.mountpoint, err)
	}
	f.server = server
	return nil
}

// PowerLoss rolls every file back to what was last fsynced. The caller has
// already killed (SIGKILL) and reaped every process using the mount, and
// closed what it holds open there. Afterwards the mount serves the
// rolled-back contents with no stale kernel cache: PowerLoss unmounts, rolls
// back, and mounts again.
func (f *FS) PowerLoss() error {
	f.mountMu.Lock()
	defer f.mountMu.Unlock()
	if f.server == nil {
		return ErrUnmounted
	}
	// Unmounted, nothing can change a file during or after the rollback,
	// and the next mount starts with empty kernel caches.
	if err := f.server.Unmount(); err != nil {
		return fmt.Errorf("lossyfs: power loss: unmount %s: %w", f.mountpoint, err)
	}
	f.server = nil
	var errs []error
	for _, u := range f.takeLogs() {
		errs = append(errs, u.retire(true))
	}
	errs = append(errs, f.mountLocked())
	return errors.Join(errs...)
}

// Unsynced reports the bytes written (by write, or by the kernel writing
// back mapped pages) since their file's last fsync, summed over the files
// that still have a name. Truncations and fallocate do not count.
func (f *FS) Unsynced() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, u := range f.logs {
		n += u.written.Load()
	}
	return n
}

// Unmount stops serving. Unsynced bytes stay in the backing files: an
// unmount is a clean shutdown, not a power loss. It is safe to call twice.
//
// A busy mount is torn down anyway, and the error says so: the FUSE
// connection is aborted (whatever still uses the mount gets ENOTCONN) and
// the mount detached. Left alone, a process exiting with a file open in a
// mount it serves itself would hang forever in close.
func (f *FS) Unmount() error {
	f.mountMu.Lock()
	defer f.mountMu.Unlock()
	if f.server == nil {
		return nil
	}
	var errs []error
	if err := f.server.Unmount(); err != nil {
		errs = append(errs, fmt.Errorf("lossyfs: unmount %s: %w", f.mountpoint, err))
		if err := unix.Unmount(f.mountpoint, unix.MNT_FORCE|unix.MNT_DETACH); err != nil {
			return errors.Join(append(errs, fmt.Errorf("lossyfs: force unmount %s: %w", f.mountpoint, err))...)
		}
		f.server.Wait()
	}
	f.server = nil
	for _, u := range f.takeLogs() {
		errs = append(errs, u.retire(false))
	}
	return errors.Join(errs...)
}
