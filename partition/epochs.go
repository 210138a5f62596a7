package partition

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mlog/mlog/storage"
)

// The leader-epoch cache maps each leader epoch to the first offset written
// in it (Kafka KIP-101). A follower that starts following a new leader asks
// the leader where its own latest epoch ended and truncates exactly there,
// never blindly to its high watermark.
//
// leader-epoch-checkpoint is text, as Kafka's: a version line ("0"), a count
// line, then one "epoch startOffset" line per entry, replaced atomically.

const epochFileName = "leader-epoch-checkpoint"

// UndefinedEpoch is the epoch (and offset) answered for an epoch older than
// any the cache knows.
const UndefinedEpoch = -1

type epochEntry struct {
	epoch int32
	start int64
}

type epochCache struct {
	path    string
	entries []epochEntry // ascending in both fields
}

var errBadEpochFile = errors.New("partition: bad leader-epoch-checkpoint")

func loadEpochCache(dir string) (*epochCache, error) {
	c := &epochCache{path: filepath.Join(dir, epochFileName)}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		switch {
		case line == 1 && (len(f) != 1 || f[0] != "0"):
			return nil, fmt.Errorf("%w: version %q", errBadEpochFile, sc.Text())
		case line <= 2:
			continue
		case len(f) != 2:
			return nil, fmt.Errorf("%w: line %d %q", errBadEpochFile, line, sc.Text())
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		s, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: line %d %q", errBadEpochFile, line, sc.Text())
		}
		c.entries = append(c.entries, epochEntry{int32(e), s})
	}
	return c, nil
}

func (c *epochCache) save() error {
	var b strings.Builder
	fmt.Fprintf(&b, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.epoch, e.start)
	}
	return storage.WriteFileAtomic(storage.OSFS{}, c.path, []byte(b.String()))
}

// latest returns the newest epoch, or UndefinedEpoch.
func (c *epochCache) latest() int32 {
	if len(c.entries) == 0 {
		return UndefinedEpoch
	}
	return c.entries[len(c.entries)-1].epoch
}

// assign records that epoch starts at offset (when newer than the latest).
func (c *epochCache) assign(epoch int32, start int64) error {
	if epoch <= c.latest() {
		return nil
	}
	c.entries = append(c.entries, epochEntry{epoch, start})
	return c.save()
}

// endOffsetFor answers OffsetForLeaderEpoch: the largest known epoch <=
// epoch, and the offset where it ended (the start of the next epoch, or
// the log end for the latest).
func (c *epochCache) endOffsetFor(epoch int32, logEnd int64) (int32, int64) {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].epoch <= epoch {
			if i == len(c.entries)-1 {
				return c.entries[i].epoch, logEnd
			}
			return c.entries[i].epoch, c.entries[i+1].start
		}
	}
	return UndefinedEpoch, UndefinedEpoch
}

// truncateFromEnd drops epochs that start at or after offset (the log was
// cut there).
func (c *epochCache) truncateFromEnd(offset int64) error {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].start >= offset {
		n--
	}
	if n == len(c.entries) {
		return nil
	}
	c.entries = c.entries[:n]
	return c.save()
}

// reset forgets every epoch (the log restarted at a new offset).
func (c *epochCache) reset() error {
	c.entries = nil
	return c.save()
}
