// Package lossyfs is a FUSE filesystem that simulates power loss: a
// passthrough of a backing directory that can, on demand, drop every byte
// written since its file's last fsync. The fault tests mount it, run real
// mlog servers with their data directory inside, kill them all at once, call
// PowerLoss and restart them, to prove that no acknowledged record is lost.
//
// It is test infrastructure: it owns nothing of mlog and must never be
// imported by code that ships in the broker.
//
// # Model
//
// The machine's disk is the backing directory; the mount is what processes
// see. On PowerLoss:
//
//   - Metadata survives. create, mkdir, unlink, rename, rmdir, link, chmod
//     and utimes pass straight through and are durable at once, as if the
//     journal committed after every operation. This is a simplification:
//     a real filesystem commits its journal every few seconds, so a create
//     or rename not followed by an fsync of its directory can be lost; this
//     model does not test that. It follows that a file created and never
//     fsynced still exists after PowerLoss, but empty, and that fsync of a
//     directory has nothing to do (it succeeds; go-fuse's loopback also
//     fsyncs the backing directory, which changes nothing here).
//   - File data (write, truncate, ftruncate, open with O_TRUNC, fallocate)
//     survives only once fsync or fdatasync of that file returned, through
//     any descriptor. close does not make data durable, nor does a rename,
//     nor msync without MS_SYNC. PowerLoss puts every file back exactly as
//     it was at its last fsync: same length, same bytes. A real disk may
//     keep some unsynced bytes, or tear a write; this model keeps none,
//     the harshest outcome, which a correct program must survive.
//
// # Undo logs
//
// Writes go to the backing file at once, so reads, mmap and sendfile see
// them with no overlay to consult. What makes them revocable is an undo
// log per backing inode (device and inode number, so that renames and hard
// links keep it), created by the first change after the last fsync:
//
//   - durable: the file's length at that moment, which is its length at
//     the last fsync, since no change bypasses an undo log;
//   - saved: for each 4 KiB block of [0, durable) about to be changed for
//     the first time, its bytes before the change. A write saves the
//     blocks it overwrites, a truncate below durable saves the blocks it
//     cuts off. Bytes past durable need no saving: PowerLoss cuts them.
//   - an open read-write descriptor of the backing file, so that PowerLoss
//     can restore a file that was renamed meanwhile.
//
// fsync drops the file's undo log: its current contents are its durable
// image. An unlink that removes a file's last link drops it too. PowerLoss
// writes every saved block back and truncates every file to its durable
// length. The memory an undo log takes is bounded by the file's size, and
// for appends (mlog's segments) is one block.
//
// The backing files are never really fsynced: the backing disk never loses
// power, only the simulated one does.
//
// # Kernel caches
//
// The mount uses the kernel page cache (no direct_io, no writeback cache),
// so mmap works: write(2) reaches the filesystem before it returns, and
// stores to a shared mapping arrive as writes when the kernel writes the
// pages back (msync, fsync, munmap, or the exit of the process). Kernel
// FUSE passthrough is not offered: every read and write must pass here.
// PowerLoss unmounts before rolling back, which also empties the kernel's
// caches of the old contents, and mounts again afterwards.
//
// # Limitations
//
//   - fallocate supports mode 0 and FALLOC_FL_KEEP_SIZE (what storage uses
//     to preallocate); punching or zeroing ranges fails with EOPNOTSUPP.
//     copy_file_range answers ENOSYS, so the kernel copies through read
//     and write; O_TMPFILE fails with EOPNOTSUPP.
//   - Extended attributes, file modes and times are metadata: durable at
//     once.
//   - PowerLoss needs the mount idle: every process using it killed and
//     reaped, every descriptor and mapping the calling process holds in it
//     closed. Otherwise PowerLoss fails (the mount is busy) and nothing
//     is lost.
//   - Mounting runs fusermount3 (or fusermount), which must be installed:
//     go-fuse v2.12.1's own mount(2) path leaves /dev/fuse open across
//     exec, and a child holding it hangs forever when killed after this
//     process died.
//   - The process serving the mount must not itself memory-map files in
//     it: a page fault waiting on its own FUSE server can deadlock with
//     the Go garbage collector's stop-the-world. Tests do such work in a
//     child process.
package lossyfs
