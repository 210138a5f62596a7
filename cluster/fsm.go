package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"github.com/mlog/mlog/internal/notify"
)

// FSM applies committed commands to the State. It publishes each version
// of the state whole through an atomic pointer and never changes a
// published one, so readers take the current state in O(1) with no lock,
// and a command's changes appear to them all at once.
type FSM struct {
	state   atomic.Pointer[State]
	mu      sync.Mutex // serialises Apply and Restore (Raft calls them one at a time anyway)
	changed notify.Notifier
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty FSM.
func NewFSM() *FSM {
	f := &FSM{}
	f.state.Store(newState())
	return f
}

// applyResult is what Apply returns through raft.ApplyFuture.Response.
type applyResult struct {
	value any
	err   error
}

// Apply applies one committed entry: the command changes a copy of the
// current state (copying only what it changes), which replaces the
// current one in a single store. A command that fails publishes nothing.
func (f *FSM) Apply(l *raft.Log) any {
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return applyResult{err: fmt.Errorf("%w: %w", ErrBadCommand, err)}
	}
	f.mu.Lock()
	d := newDraft(f.state.Load())
	v, err := d.apply(c)
	if err == nil {
		f.state.Store(d.State)
	}
	f.mu.Unlock()
	f.changed.Broadcast()
	return applyResult{value: v, err: err}
}

// State returns the current state in O(1). It is shared with every other
// caller and READ-ONLY: never change it or anything reachable from it
// (maps, Broker, Topic, Configs, Partitions, Replicas, ISR); copy first.
// It stays as it is when later commands apply: call State again for
// newer metadata.
func (f *FSM) State() *State { return f.state.Load() }

// Broker returns a copy of one registered broker.
func (f *FSM) Broker(id int32) (Broker, bool) {
	b, ok := f.State().Brokers[id]
	if !ok {
		return Broker{}, false
	}
	return *b, true
}

// Changed returns a channel closed at the next applied entry or restore.
func (f *FSM) Changed() <-chan struct{} { return f.changed.Wait() }

// Snapshot captures the state. The published state never changes, so it
// is encoded as it is, with no lock.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	b, err := json.Marshal(f.State())
	if err != nil {
		return nil, err
	}
	return snapshot(b), nil
}

// Restore replaces the state with a snapshot's.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	s := newState()
	if err := json.NewDecoder(rc).Decode(s); err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", err)
	}
	if s.Brokers == nil {
		s.Brokers = map[int32]*Broker{}
	}
	if s.Topics == nil {
		s.Topics = map[string]*Topic{}
	}
	f.mu.Lock()
	f.state.Store(s)
	f.mu.Unlock()
	f.changed.Broadcast()
	return nil
}

type snapshot []byte

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}
