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
