package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
)

const (
	checkpointName    = "log.checkpoint"
	checkpointMagic   = 0x4d4c4350 // "MLCP"
	checkpointVersion = 1
	checkpointSize    = 32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkpoint is what a log remembers between opens (format in doc.go).
type checkpoint struct {
	clean          bool  // written by Close after everything was fsynced
	recoveryPoint  int64 // every segment ending at or below it is durable
	logStartOffset int64
}

func (c checkpoint) encode() []byte {
	b := make([]byte, checkpointSize)
	binary.BigEndian.PutUint32(b[0:4], checkpointMagic)
	binary.BigEndian.PutUint16(b[4:6], checkpointVersion)
	if c.clean {
		binary.BigEndian.PutUint16(b[6:8], 1)
	}
	binary.BigEndian.PutUint64(b[8:16], uint64(c.recoveryPoint))
	binary.BigEndian.PutUint64(b[16:24], uint64(c.logStartOffset))
	binary.BigEndian.PutUint32(b[28:32], crc32.Checksum(b[:28], castagnoli))
	return b
}

var errBadCheckpoint = errors.New("storage: bad checkpoint")

func decodeCheckpoint(b []byte) (checkpoint, error) {
	if len(b) != checkpointSize {
		return checkpoint{}, fmt.Errorf("%w: %d bytes", errBadCheckpoint, len(b))
	}
	if crc32.Checksum(b[:28], castagnoli) != binary.BigEndian.Uint32(b[28:32]) {
		return checkpoint{}, fmt.Errorf("%w: crc mismatch", errBadCheckpoint)
	}
	if binary.BigEndian.Uint32(b[0:4]) != checkpointMagic || binary.BigEndian.Uint16(b[4:6]) != checkpointVersion {
		return checkpoint{}, fmt.Errorf("%w: magic or version", errBadCheckpoint)
	}
	c := checkpoint{
		clean:          binary.BigEndian.Uint16(b[6:8])&1 == 1,
		recoveryPoint:  int64(binary.BigEndian.Uint64(b[8:16])),
		logStartOffset: int64(binary.BigEndian.Uint64(b[16:24])),
	}
	if c.recoveryPoint < 0 || c.logStartOffset < 0 {
		return checkpoint{}, fmt.Errorf("%w: negative offsets", errBadCheckpoint)
	}
	return c, nil
}

func readCheckpoint(fsys FS, dir string) (checkpoint, error) {
	f, err := fsys.OpenFile(filepath.Join(dir, checkpointName), os.O_RDONLY, 0)
	if err != nil {
		return checkpoint{}, err
	}
	defer f.Close()
	b := make([]byte, checkpointSize+1)
	n, err := f.ReadAt(b, 0)
	if n == 0 && err != nil {
		return checkpoint{}, err
	}
	return decodeCheckpoint(b[:n])
}

func writeCheckpoint(fsys FS, dir string, c checkpoint) error {
	if err := WriteFileAtomic(fsys, filepath.Join(dir, checkpointName), c.encode()); err != nil {
		return fmt.Errorf("storage: write checkpoint in %s: %w", dir, err)
	}
	return nil
}
