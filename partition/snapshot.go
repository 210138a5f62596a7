package partition

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/mlog/mlog/storage/batch"
)

// producer.snapshot holds a partition's idempotent-producer state as of a
// clean close, so that opening the partition again need not replay every
// batch header of the log (a 10 GiB log of 1 MB batches read 5 GB to do
// it, 0.7 s). It names the log end it describes and the last batch there
// (base offset and CRC); it is used only when the opened log ends at that
// very batch, and is removed once read, so a log that changes afterwards
// is replayed again. It is written without fsync: a snapshot lost or torn
// by a crash fails its checksum or its log end, and the log is replayed.
//
// Layout, big-endian: "MLPS", version u16 (1), log end i64, last batch
// base offset i64 (-1: empty log), last batch CRC u32, producer count u32,
// then per producer: id i64, epoch i16, batch count u8, and per batch
// first and last sequence i32, base and last offset i64, max timestamp
// i64; last a CRC-32C of everything before it.
const snapshotFileName = "producer.snapshot"

var snapshotMagic = [4]byte{'M', 'L', 'P', 'S'}

const snapshotVersion = 1

var errBadSnapshot = errors.New("partition: bad producer snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// logTail is the last batch of the log: where a snapshot's state ends.
type logTail struct {
	end  int64 // log end offset
	base int64 // the last batch's base offset, -1 for an empty log
	crc  uint32
}

// tail reads the last batch header of the log.
func (p *Partition) tail() (logTail, error) {
	t := logTail{end: p.log.LogEndOffset(), base: -1}
	if t.end <= p.log.LogStartOffset() {
		return t, nil
	}
	err := p.log.ScanHeaders(t.end-1, func(h batch.Header) error {
		t.base, t.crc = h.BaseOffset, h.CRC
		return nil
	})
	return t, err
}

func encodeSnapshot(t logTail, producers map[int64]*producerState) []byte {
	be := binary.BigEndian
	b := append([]byte(nil), snapshotMagic[:]...)
	b = be.AppendUint16(b, snapshotVersion)
	b = be.AppendUint64(b, uint64(t.end))
	b = be.AppendUint64(b, uint64(t.base))
	b = be.AppendUint32(b, t.crc)
	b = be.AppendUint32(b, uint32(len(producers)))
	for id, ps := range producers {
		b = be.AppendUint64(b, uint64(id))
		b = be.AppendUint16(b, uint16(ps.epoch))
		b = append(b, byte(len(ps.batches)))
		for _, pb := range ps.batches {
			b = be.AppendUint32(b, uint32(pb.firstSeq))
			b = be.AppendUint32(b, uint32(pb.lastSeq))
			b = be.AppendUint64(b, uint64(pb.res.BaseOffset))
			b = be.AppendUint64(b, uint64(pb.res.LastOffset))
			b = be.AppendUint64(b, uint64(pb.res.MaxTimestamp))
		}
	}
	return be.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// snapshotBatch is one remembered batch as the file holds it.
type snapshotBatch struct {
	firstSeq, lastSeq        int32
	base, last, maxTimestamp int64
}

type snapshotProducer struct {
	id      int64
	epoch   int16
	batches []snapshotBatch
}

func decodeSnapshot(b []byte) (logTail, []snapshotProducer, error) {
	be := binary.BigEndian
	const fixed = 4 + 2 + 8 + 8 + 4 + 4
	if len(b) < fixed+4 || [4]byte(b[:4]) != snapshotMagic || be.Uint16(b[4:]) != snapshotVersion {
		return logTail{}, nil, fmt.Errorf("%w: header", errBadSnapshot)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != be.Uint32(b[len(b)-4:]) {
		return logTail{}, nil, fmt.Errorf("%w: checksum", errBadSnapshot)
	}
	t := logTail{end: int64(be.Uint64(b[6:])), base: int64(be.Uint64(b[14:])), crc: be.Uint32(b[22:])}
	n := int(be.Uint32(b[26:]))
	rest := body[fixed:]
	out := make([]snapshotProducer, 0, min(n, len(rest)/11))
	for range n {
		if len(rest) < 11 {
			return logTail{}, nil, fmt.Errorf("%w: short producer", errBadSnapshot)
		}
		sp := snapshotProducer{id: int64(be.Uint64(rest)), epoch: int16(be.Uint16(rest[8:]))}
		k := int(rest[10])
		rest = rest[11:]
		if k > keptBatches || len(rest) < k*32 {
			return logTail{}, nil, fmt.Errorf("%w: batches of producer %d", errBadSnapshot, sp.id)
		}
		for range k {
			sp.batches = append(sp.batches, snapshotBatch{firstSeq: int32(be.Uint32(rest)), lastSeq: int32(be.Uint32(rest[4:])),
				base: int64(be.Uint64(rest[8:])), last: int64(be.Uint64(rest[16:])), maxTimestamp: int64(be.Uint64(rest[24:]))})
			rest = rest[32:]
		}
		out = append(out, sp)
	}
	if len(rest) != 0 {
		return logTail{}, nil, fmt.Errorf("%w: %d trailing bytes", errBadSnapshot, len(rest))
	}
	return t, out, nil
}

// saveProducerSnapshot writes the snapshot at a clean close. Caller owns p
// alone (no appends run).
func (p *Partition) saveProducerSnapshot() error {
	t, err := p.tail()
	if err != nil {
		return err
	}
	path := filepath.Join(p.cfg.Dir, snapshotFileName)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, encodeSnapshot(t, p.producers), 0o644); err != nil {
		return fmt.Errorf("partition: producer snapshot: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("partition: producer snapshot: %w", err)
	}
	return nil
}

// loadProducerSnapshot fills p's producer state from the snapshot if it
// describes the log as opened, and removes the file either way. It reports
// whether it did; otherwise the log must be replayed.
func (p *Partition) loadProducerSnapshot() bool {
	path := filepath.Join(p.cfg.Dir, snapshotFileName)
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	if err := os.Remove(path); err != nil {
		return false // a snapshot that stays could outlive later appends
	}
	saved, producers, err := decodeSnapshot(b)
	if err != nil {
		p.cfg.Logger.Warn("producer snapshot unreadable; replaying the log", "err", err)
		return false
	}
	if t, err := p.tail(); err != nil || t != saved {
		return false // the log changed since (or could not be read): replay it
	}
	p.producers = make(map[int64]*producerState, len(producers))
	for _, sp := range producers {
		ps := &producerState{epoch: sp.epoch}
		for _, sb := range sp.batches {
			res := p.log.ResultFor(batch.Header{BaseOffset: sb.base, LastOffsetDelta: int32(sb.last - sb.base), MaxTimestamp: sb.maxTimestamp})
			ps.batches = append(ps.batches, producerBatch{firstSeq: sb.firstSeq, lastSeq: sb.lastSeq, res: res})
		}
		p.producers[sp.id] = ps
	}
	return true
}
