package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/mlog/mlog/partition"
	"github.com/mlog/mlog/storage"
)

// fetchReply is a Fetch response whose record bytes are still in segment
// files. Its framing is written here rather than by kmsg so that the records
// can go from the file to the socket with sendfile; fetch_write_test.go
// checks the bytes against kmsg's encoding.
type fetchReply struct {
	version         int16
	replica         bool // a follower's fetch: not counted as bytes out
	errorCode       int16
	sessionID       int32 // v7+: the fetch session the reply belongs to, 0 for none
	topics          []fetchTopic
	partitionErrors bool // a partition failed: answer without waiting
}

type fetchTopic struct {
	name       string
	partitions []fetchPartition
}

type fetchPartition struct {
	id               int32
	errorCode        int16
	highWatermark    int64
	lastStableOffset int64
	logStartOffset   int64
	// diverging (v12, tagged field 0 DivergingEpoch) tells a follower that
	// its log left ours after divergingEndOffset, in divergingEpoch.
	// preferred (v11) sends a consumer to another replica: no records.
	preferred          bool
	preferredReplica   int32
	diverging          bool
	divergingEpoch     int32
	divergingEndOffset int64
	// aborted are the aborted transactions a read_committed fetch's
	// records overlap.
	aborted []partition.AbortedTxn
	records storage.Region
}

func (f *fetchReply) release() {
	for i := range f.topics {
		for j := range f.topics[i].partitions {
			f.topics[i].partitions[j].records.Release()
		}
	}
}

func (f *fetchReply) size() int64 {
	var n int64
	for _, t := range f.topics {
		for _, p := range t.partitions {
			n += p.records.Size
		}
	}
	return n
}

// frame is the response as byte runs with file regions between them:
// runs[0], regions[0], runs[1], ..., regions[n-1], runs[n].
type frame struct {
	runs    [][]byte
	regions []*storage.Region
}

// encode lays out the response (size, header, body) for version v (4..12).
func (f *fetchReply) encode(buf []byte, correlationID int32) frame {
	v := f.version
	flex := v >= 12
	be := binary.BigEndian
	b := append(buf, 0, 0, 0, 0)
	b = be.AppendUint32(b, uint32(correlationID))
	if flex {
		b = append(b, 0) // response header tags
	}
	b = be.AppendUint32(b, 0) // throttle ms (v1+)
	if v >= 7 {
		b = be.AppendUint16(b, uint16(f.errorCode))
		b = be.AppendUint32(b, uint32(f.sessionID))
	}
	b = appendArrayLen(b, len(f.topics), flex)
	fr := frame{}
	total := int64(0)
	for _, t := range f.topics {
		b = appendString(b, t.name, flex)
		b = appendArrayLen(b, len(t.partitions), flex)
		for i := range t.partitions {
			p := &t.partitions[i]
			b = be.AppendUint32(b, uint32(p.id))
			b = be.AppendUint16(b, uint16(p.errorCode))
			b = be.AppendUint64(b, uint64(p.highWatermark))
			b = be.AppendUint64(b, uint64(p.lastStableOffset))
			if v >= 5 {
				b = be.AppendUint64(b, uint64(p.logStartOffset))
			}
			b = appendArrayLen(b, len(p.aborted), flex)
			for _, a := range p.aborted {
				b = be.AppendUint64(b, uint64(a.ProducerID))
				b = be.AppendUint64(b, uint64(a.FirstOffset))
				if flex {
					b = append(b, 0) // tags
				}
			}
			if v >= 11 {
				pr := int32(-1)
				if p.preferred {
					pr = p.preferredReplica
				}
				b = be.AppendUint32(b, uint32(pr))
			}
			n := p.records.Size
			if flex {
				b = binary.AppendUvarint(b, uint64(n)+1)
			} else {
				b = be.AppendUint32(b, uint32(n))
			}
			if n > 0 {
				fr.runs = append(fr.runs, b)
				fr.regions = append(fr.regions, &p.records)
				total += int64(len(b)) + n
				b = nil
			}
			if flex {
				if p.diverging {
					// One tagged field, tag 0: DivergingEpoch {Epoch
					// int32, EndOffset int64, tags}, 13 bytes.
					b = append(b, 1, 0, 13)
					b = be.AppendUint32(b, uint32(p.divergingEpoch))
					b = be.AppendUint64(b, uint64(p.divergingEndOffset))
					b = append(b, 0)
				} else {
					b = append(b, 0) // partition tags
				}
			}
		}
		if flex {
			b = append(b, 0) // topic tags
		}
	}
	if flex {
		b = append(b, 0) // response tags
	}
	fr.runs = append(fr.runs, b)
	total += int64(len(b))
	be.PutUint32(fr.runs[0], uint32(total-4))
	return fr
}

func appendArrayLen(b []byte, n int, flex bool) []byte {
	if flex {
		return binary.AppendUvarint(b, uint64(n)+1)
	}
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

func appendString(b []byte, s string, flex bool) []byte {
	if flex {
		b = binary.AppendUvarint(b, uint64(len(s))+1)
	} else {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	}
	return append(b, s...)
}

// writeFetch sends a fetch response: framing with write, records with
// sendfile when the connection is plain TCP, else through a buffer.
func (c *conn) writeFetch(buf []byte, p *pendingReply) error {
	fr := p.fetch.encode(buf, p.correlationID)
	tcp, _ := c.nc.(*net.TCPConn)
	for i, run := range fr.runs {
		if len(run) > 0 {
			if _, err := c.nc.Write(run); err != nil {
				return err
			}
		}
		if i == len(fr.regions) {
			break
		}
		var err error
		if tcp != nil {
			err = sendRegion(tcp, fr.regions[i])
		} else {
			_, err = io.Copy(c.nc, fr.regions[i].Reader())
		}
		if err != nil {
			return err
		}
	}
	if m := c.s.cfg.Metrics; m != nil && !p.fetch.replica {
		for _, t := range p.fetch.topics {
			for _, fp := range t.partitions {
				if fp.records.Size > 0 {
					m.Fetched(t.name, fp.records.Size)
				}
			}
		}
	}
	return nil
}

// sendRegion copies a file region to the socket in the kernel. The offset
// is passed explicitly, so concurrent fetches of one segment do not share a
// file position.
func sendRegion(tcp *net.TCPConn, r *storage.Region) error {
	rc, err := tcp.SyscallConn()
	if err != nil {
		return err
	}
	src := int(r.File().Fd())
	off, left := r.Position, r.Size
	var serr error
	err = rc.Write(func(fd uintptr) bool {
		for left > 0 {
			n, e := syscall.Sendfile(int(fd), src, &off, int(min(left, 1<<30)))
			if n > 0 {
				left -= int64(n)
			}
			switch {
			case errors.Is(e, syscall.EAGAIN):
				return false // wait until the socket is writable
			case errors.Is(e, syscall.EINTR):
				continue
			case e != nil:
				serr = fmt.Errorf("protocol: sendfile: %w", e)
				return true
			case n == 0:
				serr = fmt.Errorf("protocol: sendfile: %w", io.ErrUnexpectedEOF)
				return true
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}
