package storage

import (
	"errors"
	"syscall"
)

func mmap(f File, length int, writable bool) ([]byte, error) {
	prot := syscall.PROT_READ
	if writable {
		prot |= syscall.PROT_WRITE
	}
	return syscall.Mmap(int(f.Fd()), 0, length, prot, syscall.MAP_SHARED)
}

func munmap(b []byte) error { return syscall.Munmap(b) }

// preallocate reserves size bytes for f so that stores through a mapping can
// not hit SIGBUS on a full disk: the disk-full error comes back here instead.
// Filesystems without fallocate get a sparse file, as Kafka's indexes are.
func preallocate(f File, size int64) error {
	err := syscall.Fallocate(int(f.Fd()), 0, 0, size)
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
		return f.Truncate(size)
	}
	return err
}

// reserve allocates disk blocks for [off, off+n) of f without changing its
// size (FALLOC_FL_KEEP_SIZE): appends then write into blocks the filesystem
// already allocated, and recovery still sees the real end of the data.
// Failure is harmless: the write that needs the blocks reports it.
func reserve(f File, off, n int64) {
	const fallocKeepSize = 0x1
	_ = syscall.Fallocate(int(f.Fd()), fallocKeepSize, off, n)
}
