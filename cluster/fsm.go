package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/mlog/mlog/internal/notify"
)

// FSM applies committed commands to the State.
type FSM struct {
	mu      sync.RWMutex
	state   *State
	index   uint64 // last applied log index
	changed notify.Notifier
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an empty FSM.
func NewFSM() *FSM { return &FSM{state: newState()} }

// applyResult is what Apply returns through raft.ApplyFuture.Response.
type applyResult struct {
	value any
	err   error
}

// Apply applies one committed entry.
func (f *FSM) Apply(l *raft.Log) any {
	var c Command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return applyResult{err: fmt.Errorf("%w: %w", ErrBadCommand, err)}
	}
	f.mu.Lock()
	v, err := f.state.apply(c)
	f.index = l.Index
	f.mu.Unlock()
	f.changed.Broadcast()
	return applyResult{value: v, err: err}
}

// State returns a copy of the current state.
func (f *FSM) State() *State {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state.clone()
}

// Broker returns a copy of one registered broker: cheaper than State for
// the per-request checks that need only that (replica fetches).
func (f *FSM) Broker(id int32) (Broker, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, ok := f.state.Brokers[id]
	if !ok {
		return Broker{}, false
	}
	return *b, true
}

// Changed returns a channel closed at the next applied entry or restore.
func (f *FSM) Changed() <-chan struct{} { return f.changed.Wait() }

// Snapshot captures the state.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	b, err := json.Marshal(f.state)
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
	f.state = s
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
