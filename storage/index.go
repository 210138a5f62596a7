package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync/atomic"
	"syscall"
)

const (
	offsetEntrySize = 8  // relative offset u32, position u32
	timeEntrySize   = 12 // max timestamp i64, relative offset u32
)

// errIndexFull means the preallocated index has no room: the segment rolls.
var errIndexFull = errors.New("storage: index full")

// initialIndexAlloc is how much of a writable index's capacity gets disk
// blocks when it opens; the rest is allocated as entries need it, doubling.
// A broker with 10,000 mostly idle partitions then holds 10,000 × 16 KiB of
// index blocks instead of 10,000 × its full capacity.
const initialIndexAlloc = 8 << 10

// indexFile is a memory-mapped array of fixed-size entries. One appender adds
// entries; readers see the first n entries, n published atomically after the
// bytes are stored, so they never read a half-written entry.
//
// It keeps no file descriptor once mapped: every partition replica would
// otherwise hold three (its log and two indexes), and a broker with 10,000
// partitions would need over 30,000 under a hard limit that is often
// 20,000 and cannot always be raised. The rare operations that need one
// (growing the allocation, trimming, fsync) open the path again and check
// it still names the mapped file, since a reset or a rebuild may have put a
// new file there.
type indexFile struct {
	fsys      FS
	id        fileID // the file mapped; reopen checks a path still names it
	path      string
	entrySize int
	data      []byte // mapping; len(data) is the capacity in bytes
	n         atomic.Int64
	writable  bool
	// alloc is how many bytes of the file have disk blocks (its size while
	// writable, a whole number of entries): stores go only below it, so a
	// full disk fails a fallocate, never an mmap store. Writer only.
	alloc int64
}

type indexMode int

const (
	indexReadOnly indexMode = iota // mapped at its size, never written
	indexWritable                  // preallocated to maxBytes, entries kept
	indexFresh                     // emptied, then preallocated
)

// openIndexFile maps path. A writable index is mapped at maxBytes, of which
// only a first part is preallocated (room grows it); a read-only one is
// mapped at its file size. entries reports how many whole
// entries the file held before preallocation, -1 when not a whole number.
func openIndexFile(fsys FS, path string, entrySize int, maxBytes int64, mode indexMode) (*indexFile, int64, error) {
	writable := mode != indexReadOnly
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR | os.O_CREATE
	}
	if mode == indexFresh {
		flag |= os.O_TRUNC
	}
	f, err := fsys.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close() // the mapping outlives it
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	id, err := identify(fi)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: %s: %w", path, err)
	}
	size := fi.Size()
	ix := &indexFile{fsys: fsys, id: id, path: path, entrySize: entrySize, writable: writable}
	mapLen := size
	if writable {
		mapLen = maxBytes - maxBytes%int64(entrySize)
		if size > mapLen {
			mapLen = size - size%int64(entrySize)
		}
		ix.alloc = min(mapLen, max(size, initialIndexAlloc))
		ix.alloc -= ix.alloc % int64(entrySize)
		if err := preallocate(f, ix.alloc); err != nil {
			return nil, 0, fmt.Errorf("storage: preallocate %s: %w", path, err)
		}
	}
	if mapLen > 0 {
		ix.data, err = mmap(f, int(mapLen), writable)
		if err != nil {
			return nil, 0, fmt.Errorf("storage: mmap %s: %w", path, err)
		}
	}
	entries := size / int64(entrySize)
	if size%int64(entrySize) != 0 {
		entries = -1 // not whole entries: the caller must rebuild
	}
	return ix, entries, nil
}

func (ix *indexFile) entries() int64 { return ix.n.Load() }

func (ix *indexFile) entry(i int64) []byte {
	off := i * int64(ix.entrySize)
	return ix.data[off : off+int64(ix.entrySize)]
}

// add stores one entry and then publishes it. Caller is the only writer.
func (ix *indexFile) add(fill func(b []byte)) error {
	n := ix.n.Load()
	if !ix.room(1) {
		return errIndexFull
	}
	fill(ix.entry(n))
	ix.n.Store(n + 1)
	return nil
}

// room reports whether k more entries fit, allocating more of the file
// (double what it has, up to the capacity) when they fit the mapping but
// not the blocks allocated so far. A failed allocation (a full disk) means
// no room: the entry is skipped or the segment rolls, and the roll's own
// allocation reports the error.
func (ix *indexFile) room(k int64) bool {
	need := (ix.n.Load() + k) * int64(ix.entrySize)
	if !ix.writable || need > int64(len(ix.data)) {
		return false
	}
	if need <= ix.alloc {
		return true
	}
	grown := min(int64(len(ix.data)), max(need, 2*ix.alloc))
	grown -= grown % int64(ix.entrySize)
	f, err := ix.reopen(os.O_RDWR)
	if f == nil || err != nil {
		return false
	}
	err = preallocate(f, grown)
	_ = f.Close()
	if err != nil {
		return false
	}
	ix.alloc = grown
	return true
}

// truncateEntries drops entries from n on.
func (ix *indexFile) truncateEntries(n int64) {
	if n < ix.n.Load() {
		ix.n.Store(max(n, 0))
	}
}

// search returns the last entry i for which less(i) is false given entries
// sorted so that pred(i) = !less(i) is monotone: the largest i with ok(i).
func (ix *indexFile) lastWhere(ok func(i int64) bool) int64 {
	n := ix.n.Load()
	i := sort.Search(int(n), func(i int) bool { return !ok(int64(i)) })
	return int64(i) - 1
}

// trim cuts the file to its real size, keeping the mapping (readers only ever
// touch published entries, which lie inside the file). The index takes no
// more entries after it: a store past the file's end would fault.
func (ix *indexFile) trim() error {
	if !ix.writable {
		return nil
	}
	ix.writable = false
	f, err := ix.reopen(os.O_RDWR)
	if f == nil || err != nil {
		return err // nil when the file is gone or replaced: nothing to trim
	}
	return errors.Join(f.Truncate(ix.n.Load()*int64(ix.entrySize)), f.Close())
}

// sync fsyncs the index file (nothing when it is gone or replaced: its
// entries no longer matter).
func (ix *indexFile) sync() error {
	f, err := ix.reopen(os.O_RDONLY)
	if f == nil || err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// fileID names a file independently of its path.
type fileID struct{ dev, ino uint64 }

func identify(fi os.FileInfo) (fileID, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.New("no device and inode in file info")
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// reopen opens the index's path again, returning nil (and no error) when
// the path no longer names the mapped file: deleted, or a new file put in
// its place by a reset or rebuild, which an operation on this index must
// not touch.
func (ix *indexFile) reopen(flag int) (File, error) {
	f, err := ix.fsys.OpenFile(ix.path, flag, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil {
		var id fileID
		if id, err = identify(fi); err == nil && id == ix.id {
			return f, nil
		}
	}
	_ = f.Close()
	return nil, err
}

// close trims a writable index and unmaps it.
func (ix *indexFile) close() error {
	err := ix.trim()
	if ix.data != nil {
		err = errors.Join(err, munmap(ix.data))
		ix.data = nil
	}
	return err
}

// closeRaw unmaps without trimming, as a crashed process would leave it.
func (ix *indexFile) closeRaw() {
	if ix.data != nil {
		_ = munmap(ix.data)
		ix.data = nil
	}
}

// offsetIndex maps a batch's offset, relative to the segment base, to the
// batch's byte position in the .log file. Entries ascend in both fields.
type offsetIndex struct{ *indexFile }

func (o offsetIndex) at(i int64) (rel, pos uint32) {
	e := o.entry(i)
	return binary.BigEndian.Uint32(e[0:4]), binary.BigEndian.Uint32(e[4:8])
}

func (o offsetIndex) append(rel, pos uint32) error {
	return o.add(func(b []byte) {
		binary.BigEndian.PutUint32(b[0:4], rel)
		binary.BigEndian.PutUint32(b[4:8], pos)
	})
}

// lookup returns the position of the last indexed batch whose base is <= rel,
// or 0 when there is none.
func (o offsetIndex) lookup(rel uint32) (uint32, uint32) {
	i := o.lastWhere(func(i int64) bool { r, _ := o.at(i); return r <= rel })
	if i < 0 {
		return 0, 0
	}
	return o.at(i)
}

// lookupPosition returns the last indexed batch position <= pos.
func (o offsetIndex) lookupPosition(pos uint32) uint32 {
	i := o.lastWhere(func(i int64) bool { _, p := o.at(i); return p <= pos })
	if i < 0 {
		return 0
	}
	_, p := o.at(i)
	return p
}

// truncateTo drops entries for batches at or above rel.
func (o offsetIndex) truncateTo(rel uint32) {
	o.truncateEntries(o.lastWhere(func(i int64) bool { r, _ := o.at(i); return r < rel }) + 1)
}

// check reports whether entries are strictly ascending and inside a log of
// logSize bytes.
func (o offsetIndex) check(logSize int64) error {
	n := o.entries()
	var lastRel, lastPos uint32
	for i := range n {
		rel, pos := o.at(i)
		if int64(pos) >= logSize || (i > 0 && (rel <= lastRel || pos <= lastPos)) {
			return fmt.Errorf("%w: %s entry %d (rel %d, pos %d)", ErrCorruptIndex, o.path, i, rel, pos)
		}
		lastRel, lastPos = rel, pos
	}
	return nil
}

// timeIndex maps the largest timestamp seen so far to the relative offset of
// the batch that was last appended when it was recorded. Both ascend.
type timeIndex struct{ *indexFile }

func (t timeIndex) at(i int64) (ts int64, rel uint32) {
	e := t.entry(i)
	return int64(binary.BigEndian.Uint64(e[0:8])), binary.BigEndian.Uint32(e[8:12])
}

func (t timeIndex) append(ts int64, rel uint32) error {
	return t.add(func(b []byte) {
		binary.BigEndian.PutUint64(b[0:8], uint64(ts))
		binary.BigEndian.PutUint32(b[8:12], rel)
	})
}

func (t timeIndex) last() (ts int64, rel uint32, ok bool) {
	n := t.entries()
	if n == 0 {
		return 0, 0, false
	}
	ts, rel = t.at(n - 1)
	return ts, rel, true
}

// lookup returns the relative offset of the last batch known to have every
// timestamp up to it below ts: a search for ts may start there.
func (t timeIndex) lookup(ts int64) (uint32, bool) {
	i := t.lastWhere(func(i int64) bool { v, _ := t.at(i); return v < ts })
	if i < 0 {
		return 0, false
	}
	_, rel := t.at(i)
	return rel, true
}

func (t timeIndex) truncateTo(rel uint32) {
	t.truncateEntries(t.lastWhere(func(i int64) bool { _, r := t.at(i); return r < rel }) + 1)
}

func (t timeIndex) check(maxRel uint32) error {
	n := t.entries()
	var lastTs int64
	var lastRel uint32
	for i := range n {
		ts, rel := t.at(i)
		if rel > maxRel || (i > 0 && (ts <= lastTs || rel < lastRel)) {
			return fmt.Errorf("%w: %s entry %d (ts %d, rel %d)", ErrCorruptIndex, t.path, i, ts, rel)
		}
		lastTs, lastRel = ts, rel
	}
	return nil
}
