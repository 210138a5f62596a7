package lossyfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	chunkSize      = 1000 // not a multiple of blockSize, so chunks straddle blocks
	syncedChunks   = 7
	unsyncedChunks = 3
)

func chunk(i int) []byte { return pattern(byte(i*31), chunkSize) }

// writerJob appends chunks to dir/log, fsyncing (or fdatasyncing) each of
// the first syncedChunks, then appends more and overwrites the first chunk
// without syncing.
func writerJob(dir string) (string, bool, error) {
	f, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return "", false, err
	}
	for i := range syncedChunks + unsyncedChunks {
		if _, err := f.Write(chunk(i)); err != nil {
			return "", false, err
		}
		switch {
		case i >= syncedChunks:
		case i%2 == 0:
			err = f.Sync()
		default:
			err = unix.Fdatasync(int(f.Fd()))
		}
		if err != nil {
			return "", false, err
		}
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xff}, chunkSize), 0); err != nil {
		return "", false, err
	}
	return "written", true, nil
}

func TestKilledWriterKeepsSyncedPrefix(t *testing.T) {
	f, _, mnt := mountForTest(t)
	cmd, _ := startHelper(t, "writer", mnt)
	if n, want := f.Unsynced(), int64((unsyncedChunks+1)*chunkSize); n != want {
		t.Fatalf("Unsynced = %d with the writer running, want %d", n, want)
	}
	killHelper(t, cmd)
	powerLoss(t, f)
	var want []byte
	for i := range syncedChunks {
		want = append(want, chunk(i)...)
	}
	wantContents(t, filepath.Join(mnt, "log"), want)
}

// mmapJob maps dir/index, which holds 2 blocks of pattern 1, grows it to 4
// blocks with fallocate, checks the mapping shows what write(2) wrote, and
// stores to it: blocks 0 and 2 get pattern 2 and msync(MS_SYNC), then
// blocks 1 and 3 get pattern 3, never synced.
func mmapJob(dir string) (string, bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, "index"), os.O_RDWR, 0)
	if err != nil {
		return "", false, err
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, 4*blockSize); err != nil {
		return "", false, fmt.Errorf("fallocate: %w", err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, 4*blockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return "", false, fmt.Errorf("mmap: %w", err)
	}
	if !bytes.Equal(m[:2*blockSize], pattern(1, 2*blockSize)) {
		return "", false, errors.New("the mapping does not show the file's bytes")
	}
	copy(m[0:blockSize], pattern(2, blockSize))
	copy(m[2*blockSize:3*blockSize], pattern(2, blockSize))
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		return "", false, fmt.Errorf("msync: %w", err)
	}
	copy(m[blockSize:2*blockSize], pattern(3, blockSize))
	copy(m[3*blockSize:], pattern(3, blockSize))
	return "mapped", true, nil
}

func TestMmap(t *testing.T) {
	f, backing, mnt := mountForTest(t)
	name := filepath.Join(mnt, "index")
	writeSynced(t, name, pattern(1, 2*blockSize))
	cmd, _ := startHelper(t, "mmap", mnt)

	// Stores to the mapping are visible to read(2) at once; the synced
	// ones reached the backing file.
	b2, b3 := pattern(2, blockSize), pattern(3, blockSize)
	wantContents(t, name, bytes.Join([][]byte{b2, b3, b2, b3}, nil))
	got, err := os.ReadFile(filepath.Join(backing, "index"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4*blockSize || !bytes.Equal(got[:blockSize], b2) || !bytes.Equal(got[2*blockSize:3*blockSize], b2) {
		t.Fatal("msync(MS_SYNC) did not write the mapped blocks to the backing file")
	}

	// The unsynced stores reach the filesystem when the killed process's
	// mapping goes, and are rolled back with the rest.
	killHelper(t, cmd)
	if n := f.Unsynced(); n < 2*blockSize {
		t.Fatalf("Unsynced = %d after the mapping went, want at least %d", n, 2*blockSize)
	}
	powerLoss(t, f)
	wantContents(t, name, bytes.Join([][]byte{b2, pattern(1, 2*blockSize)[blockSize:], b2, make([]byte, blockSize)}, nil))
}

// A process started while the filesystem is mounted must not hold the FUSE
// device: holding it keeps the connection alive after the server dies, and
// the process then hangs forever closing its files when killed.
func TestChildrenDoNotInheritFuseDevice(t *testing.T) {
	f, _, mnt := mountForTest(t)
	powerLoss(t, f) // and the mount made by PowerLoss
	cmd, _ := startHelper(t, "writer", mnt)
	fds := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	entries, err := os.ReadDir(fds)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, _ := os.Readlink(filepath.Join(fds, e.Name())); target == "/dev/fuse" {
			t.Errorf("the child holds /dev/fuse as fd %s", e.Name())
		}
	}
	killHelper(t, cmd)
}
