package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/serf/serf"
)

const (
	// eventsBuffer is the capacity of the channel returned by Events.
	eventsBuffer = 256
	// serfEventBuffer absorbs what serf still emits while and after we shut
	// down, when nothing reads its channel any more: serf's forwarding
	// goroutine sends without watching for shutdown.
	serfEventBuffer = 1024
	// backlogWarn is the first queue length at which a slow consumer is
	// reported; every doubling after it is reported again.
	backlogWarn = 1024
	// resolveTimeout bounds the DNS lookup of a hostname AdvertiseAddr.
	resolveTimeout = 10 * time.Second
)

// Membership is this node's view of the cluster. All methods are safe for
// concurrent use.
type Membership struct {
	cfg  Config
	log  *slog.Logger
	serf *serf.Serf
	addr string // host:port Serf took, fixed at start

	serfEvents chan serf.Event // serf → forward
	events     chan Event      // forward → consumer; closed by forward

	stopJoin    chan struct{} // closed first on close: no joins after leave
	firstJoin   chan struct{} // closed when the first join attempt has ended
	stopForward chan struct{} // closed after serf is shut down
	wg          sync.WaitGroup

	tagsMu sync.Mutex // serialises SetTags: serf writes its tags unlocked

	closed   atomic.Bool
	closeMu  sync.Mutex // held for the whole of Leave/Shutdown
	closeErr error      // caller holds closeMu
}

// New validates cfg, starts serf listening on cfg.BindAddr and, when
// cfg.Peers is not empty, a background joiner. Events are delivered on
// Events() until Leave or Shutdown.
func New(cfg Config) (*Membership, error) {
	cfg.Tags = copyTags(cfg.Tags)
	cfg.Peers = slices.Clone(cfg.Peers)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Membership{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.NodeName),
		serfEvents:  make(chan serf.Event, serfEventBuffer),
		events:      make(chan Event, eventsBuffer),
		stopJoin:    make(chan struct{}),
		firstJoin:   make(chan struct{}),
		stopForward: make(chan struct{}),
	}

	ctx, cancel := context.WithTimeout(context.Background(), resolveTimeout)
	sc, err := serfConfig(ctx, &cfg, m.serfEvents)
	cancel()
	if err != nil {
		return nil, err
	}
	s, err := serf.Create(sc)
	if err != nil {
		return nil, fmt.Errorf("membership: start serf on %s: %w", cfg.BindAddr, err)
	}
	m.serf = s
	if n := s.Memberlist().LocalNode(); n != nil { // before any tag update can race with the read
		m.addr = net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
	}

	m.goFunc(m.forward)
	if len(cfg.Peers) > 0 {
		m.goFunc(m.join)
	} else {
		close(m.firstJoin)
	}
	local := s.LocalMember()
	m.log.Info("membership started", "addr", fromSerfMember(local).Addr,
		"bind_addr", cfg.BindAddr, "peers", strings.Join(cfg.Peers, ","))
	return m, nil
}

// goFunc runs f in a goroutine that Shutdown waits for.
func (m *Membership) goFunc(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// Events returns the channel of membership changes, including this node's
// own join. It is closed once Leave or Shutdown has completed; changes not
// yet received by then are dropped.
func (m *Membership) Events() <-chan Event { return m.events }

// LocalName returns this node's name.
func (m *Membership) LocalName() string { return m.cfg.NodeName }

// Addr is the host:port other nodes join this one at (the port Serf
// took, when configured with port 0).
func (m *Membership) Addr() string { return m.addr }

// Members returns every member this node knows of, itself included, sorted
// by name. Failed and left members stay listed until serf reaps them.
func (m *Membership) Members() []Member {
	sms := m.serf.Members()
	out := make([]Member, 0, len(sms))
	for _, sm := range sms {
		out = append(out, fromSerfMember(sm))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetTags replaces this node's tags; the other members see an EventUpdate.
// It blocks until the update has been broadcast or serf's broadcast
// timeout (5 s) passes.
func (m *Membership) SetTags(tags map[string]string) error {
	if m.closed.Load() {
		return ErrClosed
	}
	// Serf waits for the update's broadcast, up to its BroadcastTimeout
	// (5 s), and a shutdown does not cut that wait short: the caller
	// returns at shutdown, the update ends on its own within the timeout.
	t := copyTags(tags) // now: the caller may change tags once we return
	done := make(chan error, 1)
	go func() {
		m.tagsMu.Lock()
		defer m.tagsMu.Unlock()
		done <- m.serf.SetTags(t)
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("membership: set tags of %s: %w", m.cfg.NodeName, err)
		}
		return nil
	case <-m.stopJoin:
		return ErrClosed
	}
}

// Leave leaves the cluster gracefully, so that the others see EventLeave
// rather than EventFailed, then shuts down. Calling it again, or after
// Shutdown, returns the first outcome.
func (m *Membership) Leave() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed.Load() {
		return m.closeErr
	}
	m.closed.Store(true)
	// No join may start once serf is leaving: it would undo the leave.
	close(m.stopJoin)
	var errs []error
	if err := m.serf.Leave(); err != nil {
		errs = append(errs, fmt.Errorf("membership: leave %s: %w", m.cfg.NodeName, err))
	}
	errs = append(errs, m.shutdownLocked())
	m.closeErr = errors.Join(errs...)
	m.log.Info("membership left")
	return m.closeErr
}

// Shutdown stops serf without leaving: to the others it looks like a
// crash, and they see EventFailed. It stops the joiner, waits for every
// goroutine of this package and closes Events. Calling it again, or after
// Leave, returns the first outcome.
func (m *Membership) Shutdown() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed.Load() {
		return m.closeErr
	}
	m.closed.Store(true)
	close(m.stopJoin)
	m.closeErr = m.shutdownLocked()
	m.log.Info("membership shut down")
	return m.closeErr
}

// shutdownLocked stops everything in reverse start-up order. The joiner
// may be inside serf.Join; shutting serf down makes that return. Caller
// holds closeMu and has closed stopJoin.
func (m *Membership) shutdownLocked() error {
	var errs []error
	if err := m.serf.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("membership: shut down serf of %s: %w", m.cfg.NodeName, err))
	}
	close(m.stopForward)
	m.wg.Wait()
	return errors.Join(errs...)
}

// join contacts cfg.Peers every RejoinInterval until one of them answers.
// Joining only ourselves (a peer list naming this node) does not count.
func (m *Membership) join() {
	for attempt := 1; ; attempt++ {
		n, err := m.serf.Join(m.cfg.Peers, false)
		if attempt == 1 {
			close(m.firstJoin)
		}
		if n > 0 && m.hasOtherMember() {
			m.log.Info("joined cluster", "peers_answered", n, "attempts", attempt)
			return
		}
		// Starting before the peers is normal; only say so loudly when it
		// goes on (attempts 10, 100, 1000, ...).
		if isPowerOfTen(attempt) && attempt >= 10 {
			m.log.Warn("no peer answered yet; still trying", "peers", strings.Join(m.cfg.Peers, ","),
				"attempts", attempt, "err", err)
		} else {
			m.log.Debug("join attempt failed", "peers", strings.Join(m.cfg.Peers, ","),
				"attempt", attempt, "err", err)
		}
		t := time.NewTimer(m.cfg.RejoinInterval)
		select {
		case <-m.stopJoin:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// FirstJoin is closed once the first attempt to join cfg.Peers has ended
// (at once without peers): Members then holds every peer that answered,
// with its tags.
func (m *Membership) FirstJoin() <-chan struct{} { return m.firstJoin }

// hasOtherMember reports whether serf knows an alive member besides us.
func (m *Membership) hasOtherMember() bool {
	for _, sm := range m.serf.Members() {
		if sm.Name != m.cfg.NodeName && sm.Status == serf.StatusAlive {
			return true
		}
	}
	return false
}

func isPowerOfTen(n int) bool {
	for n >= 10 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

// forward moves serf's events into an unbounded queue feeding Events, so
// a slow consumer never stalls serf. It owns the queue and closes events
// when stopForward closes.
func (m *Membership) forward() {
	defer close(m.events)
	var queue []Event
	warnAt := backlogWarn
	for {
		var out chan<- Event
		var next Event
		if len(queue) > 0 {
			out, next = m.events, queue[0]
		}
		select {
		case se := <-m.serfEvents:
			evs, ok := fromSerfEvent(se)
			if !ok {
				continue
			}
			for _, e := range evs {
				m.log.Debug("member event", "type", e.Type, "member", e.Member.Name,
					"addr", e.Member.Addr, "status", e.Member.Status)
			}
			queue = append(queue, evs...)
			if len(queue) >= warnAt {
				m.log.Warn("membership events are not being consumed fast enough", "queued", len(queue))
				warnAt *= 2
			}
		case out <- next:
			queue[0] = Event{}
			queue = queue[1:]
			if len(queue) == 0 {
				queue = nil // release the backing array
				warnAt = backlogWarn
			}
		case <-m.stopForward:
			if len(queue) > 0 {
				m.log.Debug("dropping undelivered membership events at shutdown", "count", len(queue))
			}
			return
		}
	}
}
