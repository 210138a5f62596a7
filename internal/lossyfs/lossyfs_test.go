package lossyfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// pattern returns n bytes that differ from any other pattern's seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// writeSynced creates (or replaces) name with data and fsyncs it.
func writeSynced(t *testing.T, name string, data []byte) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeAt writes data at off without fsync.
func writeAt(t *testing.T, name string, data []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func wantContents(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes, want %d; first difference at %d", filepath.Base(name), len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func powerLoss(t *testing.T, f *FS) {
	t.Helper()
	if err := f.PowerLoss(); err != nil {
		t.Fatalf("power loss: %v", err)
	}
	if n := f.Unsynced(); n != 0 {
		t.Fatalf("after power loss, %d bytes unsynced", n)
	}
}

func TestSyncedWriteSurvivesPowerLoss(t *testing.T) {
	f, backing, mnt := mountForTest(t)
	data := pattern(1, 3*blockSize+17)
	writeSynced(t, filepath.Join(mnt, "f"), data)
	if n := f.Unsynced(); n != 0 {
		t.Fatalf("%d bytes unsynced after fsync", n)
	}
	powerLoss(t, f)
	wantContents(t, filepath.Join(mnt, "f"), data)
	wantContents(t, filepath.Join(backing, "f"), data)
}

func TestUnsyncedAppendIsLost(t *testing.T) {
	f, _, mnt := mountForTest(t)
	name := filepath.Join(mnt, "f")
	synced := pattern(1, 5000)
	writeSynced(t, name, synced)
	af, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := af.Write(pattern(2, 3000)); err != nil {
		t.Fatal(err)
	}
	if err := af.Close(); err != nil { // close makes nothing durable
		t.Fatal(err)
	}
	if n := f.Unsynced(); n != 3000 {
		t.Fatalf("Unsynced = %d, want 3000", n)
	}
	wantContents(t, name, append(synced, pattern(2, 3000)...))
	powerLoss(t, f)
	wantContents(t, name, synced)
}

func TestUnsyncedOverwriteIsRolledBack(t *testing.T) {
	f, _, mnt := mountForTest(t)
	name := filepath.Join(mnt, "f")
	synced := pattern(1, 3*blockSize+100)
	writeSynced(t, name, synced)
	writeAt(t, name, pattern(2, 8000), 1000)             // inside, across blocks
	writeAt(t, name, pattern(3, 400), 3*blockSize)       // the partial last block
	writeAt(t, name, pattern(4, 500), 3*blockSize+50)    // the same block again, and past the end
	writeAt(t, name, pattern(5, 10), int64(len(synced))) // past the end only
	powerLoss(t, f)
	wantContents(t, name, synced)
}

func TestUnsyncedTruncateIsRolledBack(t *testing.T) {
	f, _, mnt := mountForTest(t)
	synced := pattern(1, 2*blockSize+300)
	shrink := func(t *testing.T, name string) {
		if err := os.Truncate(name, 10); err != nil { // truncate(2) by name
			t.Fatal(err)
		}
	}
	cases := map[string]func(t *testing.T, name string){
		"truncate": shrink,
		"ftruncate": func(t *testing.T, name string) {
			tf, err := os.OpenFile(name, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer tf.Close()
			if err := tf.Truncate(blockSize + 1); err != nil {
				t.Fatal(err)
			}
		},
		"O_TRUNC": func(t *testing.T, name string) {
			if err := os.WriteFile(name, []byte("short"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		"shrink then grow": func(t *testing.T, name string) {
			shrink(t, name)
			if err := os.Truncate(name, 3*blockSize); err != nil {
				t.Fatal(err)
			}
			writeAt(t, name, pattern(9, 100), blockSize)
		},
		"grow": func(t *testing.T, name string) {
			if err := os.Truncate(name, 5*blockSize); err != nil {
				t.Fatal(err)
			}
		},
	}
	for what, change := range cases {
		name := filepath.Join(mnt, what)
		writeSynced(t, name, synced)
		change(t, name)
		if fi, err := os.Stat(name); err != nil || fi.Size() == int64(len(synced)) {
			t.Fatalf("%s: size unchanged before the power loss: %v", what, err)
		}
	}
	powerLoss(t, f)
	for what := range cases {
		wantContents(t, filepath.Join(mnt, what), synced)
	}
}

func TestNewFileNeverSyncedIsEmpty(t *testing.T) {
	f, _, mnt := mountForTest(t)
	name := filepath.Join(mnt, "new")
	if err := os.WriteFile(name, pattern(1, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, f)
	wantContents(t, name, []byte{}) // the file stays: creating it is metadata
}

func TestMetadataIsDurable(t *testing.T) {
	f, backing, mnt := mountForTest(t)
	dir := filepath.Join(mnt, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeSynced(t, filepath.Join(dir, "a"), []byte("a"))
	if err := os.Rename(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gone"), pattern(1, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := f.Unsynced(); n != 100 {
		t.Fatalf("Unsynced = %d, want 100", n)
	}
	if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	if n := f.Unsynced(); n != 0 {
		t.Fatalf("Unsynced = %d after the only unsynced file was removed", n)
	}
	if err := os.Mkdir(filepath.Join(mnt, "e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "e")); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync of a directory: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	// The backing directory shows every change at once...
	wantContents(t, filepath.Join(backing, "d", "b"), []byte("a"))
	for _, p := range []string{"d/a", "d/gone", "e"} {
		if _, err := os.Lstat(filepath.Join(backing, p)); !os.IsNotExist(err) {
			t.Errorf("backing %s: %v, want not found", p, err)
		}
	}
	// ...and a power loss keeps them.
	powerLoss(t, f)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "b" {
		t.Fatalf("after power loss d holds %v, want [b]", entries)
	}
	wantContents(t, filepath.Join(dir, "b"), []byte("a"))
	if _, err := os.Lstat(filepath.Join(mnt, "e")); !os.IsNotExist(err) {
		t.Fatalf("removed directory e: %v, want not found", err)
	}
}

// The undo log follows the inode: a file renamed after an unsynced write is
// still rolled back, and one replaced by a rename is forgotten.
func TestRenamedFileIsRolledBack(t *testing.T) {
	f, _, mnt := mountForTest(t)
	x, y, z := filepath.Join(mnt, "x"), filepath.Join(mnt, "y"), filepath.Join(mnt, "z")
	writeSynced(t, x, []byte("version 1"))
	writeAt(t, x, []byte("version 2"), 0)
	if err := os.WriteFile(y, pattern(1, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	if n := f.Unsynced(); n != 1009 {
		t.Fatalf("Unsynced = %d, want 1009", n)
	}
	if err := os.Rename(x, z); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(z, y); err != nil { // replaces y, unsynced bytes and all
		t.Fatal(err)
	}
	if n := f.Unsynced(); n != 9 {
		t.Fatalf("Unsynced = %d, want 9 once y was replaced", n)
	}
	powerLoss(t, f)
	wantContents(t, y, []byte("version 1"))
}

func TestFallocate(t *testing.T) {
	f, _, mnt := mountForTest(t)
	name := filepath.Join(mnt, "f")
	synced := pattern(1, 100)
	writeSynced(t, name, synced)
	af, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer af.Close()
	fd := int(af.Fd())
	if err := unix.Fallocate(fd, 0, 0, 2*blockSize); err != nil {
		t.Fatalf("fallocate: %v", err)
	}
	if err := unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 2*blockSize, 2*blockSize); err != nil {
		t.Fatalf("fallocate KEEP_SIZE: %v", err)
	}
	if fi, err := af.Stat(); err != nil || fi.Size() != 2*blockSize {
		t.Fatalf("size after fallocate: %v, %v; want %d", fi.Size(), err, 2*blockSize)
	}
	// storage falls back to ftruncate on EOPNOTSUPP; other modes must
	// fail as cleanly.
	err = unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, blockSize)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("fallocate PUNCH_HOLE: %v, want EOPNOTSUPP", err)
	}
	if err := af.Close(); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, f)
	wantContents(t, name, synced) // the unsynced extension is cut

	af, err = os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(af.Fd()), 0, 0, 2*blockSize); err != nil {
		t.Fatal(err)
	}
	if err := af.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := af.Close(); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, f)
	wantContents(t, name, append(synced, make([]byte, 2*blockSize-len(synced))...))
}

// PowerLoss refuses to run while the mount is in use, and loses nothing.
func TestPowerLossWhileBusyFails(t *testing.T) {
	f, _, mnt := mountForTest(t)
	name := filepath.Join(mnt, "f")
	writeSynced(t, name, []byte("synced"))
	of, err := os.OpenFile(name, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	if _, err := of.Write([]byte(" unsynced")); err != nil {
		t.Fatal(err)
	}
	if err := f.PowerLoss(); err == nil {
		t.Fatal("power loss with a file open in the mount succeeded")
	}
	if n := f.Unsynced(); n != int64(len(" unsynced")) {
		t.Fatalf("Unsynced = %d after a failed power loss, want %d", n, len(" unsynced"))
	}
	if err := of.Close(); err != nil {
		t.Fatal(err)
	}
	wantContents(t, name, []byte("synced unsynced"))
	powerLoss(t, f)
	wantContents(t, name, []byte("synced"))
}

// Unmount tears a busy mount down anyway: a test that fails with a file
// open in the mount must not hang its process at exit.
func TestUnmountWhileBusy(t *testing.T) {
	f, _, mnt := mountForTest(t)
	of, err := os.Create(filepath.Join(mnt, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	if err := f.Unmount(); err == nil {
		t.Fatal("unmount with a file open reported no error")
	}
	if _, err := of.Write([]byte("x")); !errors.Is(err, unix.ENOTCONN) {
		t.Fatalf("write after a forced unmount: %v, want ENOTCONN", err)
	}
	if err := f.PowerLoss(); !errors.Is(err, ErrUnmounted) {
		t.Fatalf("power loss after unmount: %v, want ErrUnmounted", err)
	}
}
