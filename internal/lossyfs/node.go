package lossyfs

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is go-fuse's loopback node with every operation that changes file
// data routed through an undo log. Metadata operations are the loopback's.
type node struct {
	*fs.LoopbackNode
	fsys *FS
	gen  uint64 // the mount this node belongs to
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.FileReader         = (*handle)(nil)
	_ fs.FileWriter         = (*handle)(nil)
	_ fs.FileFsyncer        = (*handle)(nil)
	_ fs.FileAllocater      = (*handle)(nil)
	_ fs.FileGetattrer      = (*handle)(nil)
	_ fs.FileReleaser       = (*handle)(nil)
)

// WrapChild makes every node the loopback creates one of ours.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	if l, ok := ops.(*fs.LoopbackNode); ok {
		return &node{LoopbackNode: l, fsys: n.fsys, gen: n.gen}
	}
	return ops
}

func (n *node) backingPath() string { return filepath.Join(n.RootData.Path, n.Path(nil)) }

// Open opens the backing file. The kernel truncates for O_TRUNC with a
// Setattr (go-fuse does not ask for atomic O_TRUNC); should the flag come
// here all the same, it becomes a truncate that can be undone.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, _, errno := n.LoopbackNode.Open(ctx, flags&^syscall.O_TRUNC)
	if errno != 0 {
		return nil, 0, errno
	}
	return n.adopt(ctx, fh, flags)
}

// Create creates the file (metadata: durable at once); its data is not.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	ch, fh, _, errno := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	child, _ := ch.Operations().(*node)
	if child == nil {
		_ = fh.(fs.FileReleaser).Release(ctx)
		return nil, nil, 0, syscall.EIO
	}
	h, fuseFlags, errno := child.adopt(ctx, fh, flags)
	return ch, h, fuseFlags, errno
}

// adopt turns the loopback's file handle into ours (ours offers the kernel
// no passthrough, which would let writes bypass the undo log) and applies
// O_TRUNC.
func (n *node) adopt(ctx context.Context, fh fs.FileHandle, flags uint32) (*handle, uint32, syscall.Errno) {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return nil, 0, syscall.EIO
	}
	defer lf.Release(ctx)
	fd, ok := lf.PassthroughFd()
	if !ok {
		return nil, 0, syscall.EBADF
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	h, err := n.newHandle(os.NewFile(uintptr(dup), n.backingPath()))
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	if flags&syscall.O_TRUNC != 0 {
		if errno := h.truncate(0); errno != 0 {
			_ = h.f.Close()
			return nil, 0, errno
		}
	}
	return h, 0, 0
}

func (n *node) newHandle(f *os.File) (*handle, error) {
	key, err := keyOf(f)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &handle{n: n, f: f, key: key}, nil
}

// Setattr makes a size change (truncate, ftruncate) undoable and leaves the
// rest (mode, owner, times: metadata) to the loopback.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		h, _ := f.(*handle)
		if h == nil { // truncate(2) by name
			bf, err := os.OpenFile(n.backingPath(), os.O_RDWR, 0)
			if err != nil {
				return fs.ToErrno(err)
			}
			if h, err = n.newHandle(bf); err != nil {
				return fs.ToErrno(err)
			}
			defer h.f.Close()
		}
		if errno := h.truncate(int64(size)); errno != 0 {
			return errno
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// Unlink removes a name; a file left with none needs no undo log.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 {
		n.fsys.forgetUnlinked()
	}
	return errno
}

// Rename renames; a file it replaced may be left with no name.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 {
		n.fsys.forgetUnlinked()
	}
	return errno
}

// CopyFileRange answers ENOSYS: the kernel then copies with reads and
// writes, which the undo log sees.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut, length, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Tmpfile refuses O_TMPFILE, whose files have no path to reopen.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// handle is an open backing file. Reads use it; changes go through the
// file's undo log and its read-write descriptor.
type handle struct {
	n   *node
	f   *os.File
	key fileKey
}

func (h *handle) change(fn func(*undoLog) error) syscall.Errno {
	return fs.ToErrno(h.n.fsys.change(h.n.gen, h.key, h.reopen, fn))
}

// reopen opens the same inode read-write, whatever h was opened for and
// wherever the file was renamed since.
func (h *handle) reopen() (*os.File, string, error) {
	f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", h.f.Fd()), os.O_RDWR, 0)
	return f, h.f.Name(), err
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := h.f.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, fs.ToErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	var n int
	errno := h.change(func(u *undoLog) (err error) {
		n, err = u.write(data, off)
		return err
	})
	return uint32(n), errno
}

func (h *handle) truncate(size int64) syscall.Errno {
	return h.change(func(u *undoLog) error { return u.truncate(size) })
}

// Allocate supports the modes that change no byte: see undoLog.allocate.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if mode&^unix.FALLOC_FL_KEEP_SIZE != 0 {
		return syscall.EOPNOTSUPP
	}
	return h.change(func(u *undoLog) error { return u.allocate(int64(off), int64(size), mode) })
}

// Fsync (and fdatasync) makes the file's data durable: its undo log goes.
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	h.n.fsys.synced(h.key)
	return 0
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(h.f.Fd()), &st); err != nil {
		return fs.ToErrno(err)
	}
	out.FromStat(&st)
	return 0
}

// Release closes the handle. It makes nothing durable.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	return fs.ToErrno(h.f.Close())
}
