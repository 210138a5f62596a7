package membership

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"
)

// waitFor polls cond until it holds, failing the test after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testLogWriter sends log lines to t.Log until the test's cleanup runs;
// memberlist goroutines can outlive Shutdown by a moment, and t.Log after
// the test has finished would panic.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger must be called before anything else registers a cleanup, so
// that it is silenced last.
func testLogger(t testing.TB) *slog.Logger {
	w := &testLogWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// freePort finds a loopback port free for both TCP and UDP, as serf needs.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return 0
}

// testNode is a Membership plus everything it delivered on Events.
type testNode struct {
	m    *Membership
	done chan struct{} // closed when Events is closed

	mu     sync.Mutex
	events []Event
}

func startNode(t *testing.T, cfg Config) *testNode {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.NodeName, err)
	}
	n := &testNode{m: m, done: make(chan struct{})}
	go func() {
		defer close(n.done)
		for e := range m.Events() {
			n.mu.Lock()
			n.events = append(n.events, e)
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		if err := m.Shutdown(); err != nil {
			t.Errorf("Shutdown(%s): %v", cfg.NodeName, err)
		}
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			t.Errorf("Events of %s not closed after Shutdown", cfg.NodeName)
		}
	})
	return n
}

func nodeConfig(log *slog.Logger, name, bind string, peers ...string) Config {
	cfg := DefaultConfig()
	cfg.NodeName = name
	cfg.BindAddr = bind
	cfg.Peers = peers
	cfg.Tags = tagsFor(name, "1")
	cfg.RejoinInterval = 100 * time.Millisecond
	cfg.Local = true
	cfg.Logger = log
	return cfg
}

func tagsFor(name, version string) map[string]string {
	i := strings.TrimPrefix(name, "node-")
	return map[string]string{
		"id":    name,
		"kafka": "127.0.0.1:1909" + i,
		"raft":  "127.0.0.1:1809" + i,
		"v":     version,
	}
}

// hasEvent reports whether n received an event of type typ about member
// name carrying tags (nil tags: any).
func (n *testNode) hasEvent(typ EventType, name string, tags map[string]string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, e := range n.events {
		if e.Type == typ && e.Member.Name == name && (tags == nil || maps.Equal(e.Member.Tags, tags)) {
			return true
		}
	}
	return false
}

// member returns n's current view of member name.
func (n *testNode) member(name string) (Member, bool) {
	for _, mb := range n.m.Members() {
		if mb.Name == name {
			return mb, true
		}
	}
	return Member{}, false
}

func (n *testNode) sees(name string, status Status, tags map[string]string) bool {
	mb, ok := n.member(name)
	return ok && mb.Status == status && (tags == nil || maps.Equal(mb.Tags, tags))
}

// TestCluster walks three nodes through start in any order, tag updates,
// a crash and a graceful leave.
func TestCluster(t *testing.T) {
	log := testLogger(t)
	const wait = 15 * time.Second

	port1 := freePort(t)
	addr1 := net.JoinHostPort("127.0.0.1", strconv.Itoa(port1))

	// Hold node-1's TCP port with a listener that hangs up on everyone, so
	// that node-2's and node-3's first join attempts provably fail: only
	// the background retry can bring them in.
	fake, err := net.Listen("tcp", addr1)
	if err != nil {
		t.Fatalf("listen on node-1's port: %v", err)
	}
	accepted := make(chan struct{}, 16)
	fakeDone := make(chan struct{})
	go func() {
		defer close(fakeDone)
		for {
			c, err := fake.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()

	// node-2 and node-3 bind port 0 (memberlist picks) and start first.
	n2 := startNode(t, nodeConfig(log, "node-2", "127.0.0.1:0", addr1))
	n3 := startNode(t, nodeConfig(log, "node-3", "127.0.0.1:0", addr1))
	for i := range 2 {
		select {
		case <-accepted:
		case <-time.After(wait):
			t.Fatalf("join attempt %d against node-1's port never came", i+1)
		}
	}
	fake.Close()
	<-fakeDone

	// node-1 has no peers and advertises a hostname without a port, which
	// must resolve to 127.0.0.1 and take the bind port.
	cfg1 := nodeConfig(log, "node-1", addr1)
	cfg1.AdvertiseAddr = "localhost"
	n1 := startNode(t, cfg1)
	nodes := map[string]*testNode{"node-1": n1, "node-2": n2, "node-3": n3}

	// Everything below needs a formed cluster; stop here if there is none.
	formed := t.Run("all see all alive with tags", func(t *testing.T) {
		for viewer, n := range nodes {
			for name := range nodes {
				waitFor(t, wait, viewer+" sees "+name+" alive with tags", func() bool {
					return n.sees(name, StatusAlive, tagsFor(name, "1"))
				})
			}
		}
		for viewer, n := range nodes {
			if got := len(n.m.Members()); got != 3 {
				t.Errorf("%s: %d members, want 3", viewer, got)
			}
		}
		if mb, _ := n2.member("node-1"); mb.Addr != addr1 {
			t.Errorf("node-1 advertised as %q, want %q", mb.Addr, addr1)
		}
		if mb, _ := n1.member("node-2"); !strings.HasPrefix(mb.Addr, "127.0.0.1:") || strings.HasSuffix(mb.Addr, ":0") {
			t.Errorf("node-2 (bound to port 0) advertised as %q", mb.Addr)
		}
		if got := n1.m.LocalName(); got != "node-1" {
			t.Errorf("LocalName = %q", got)
		}
	})
	if !formed {
		t.FailNow()
	}

	t.Run("join events carry tags", func(t *testing.T) {
		for viewer, n := range nodes {
			for name := range nodes {
				if name == viewer {
					continue
				}
				waitFor(t, wait, viewer+" gets EventJoin for "+name, func() bool {
					return n.hasEvent(EventJoin, name, tagsFor(name, "1"))
				})
			}
		}
	})

	t.Run("Members returns copies", func(t *testing.T) {
		mb, ok := n1.member("node-2")
		if !ok {
			t.Fatal("node-1 does not know node-2")
		}
		mb.Tags["id"] = "scribbled"
		if !n1.sees("node-2", StatusAlive, tagsFor("node-2", "1")) {
			t.Fatal("modifying a returned Member changed membership state")
		}
	})

	t.Run("SetTags gossips EventUpdate", func(t *testing.T) {
		newTags := tagsFor("node-1", "2")
		if err := n1.m.SetTags(newTags); err != nil {
			t.Fatalf("SetTags: %v", err)
		}
		newTags["v"] = "caller scribbled after SetTags"
		want := tagsFor("node-1", "2")
		for _, viewer := range []string{"node-2", "node-3"} {
			n := nodes[viewer]
			waitFor(t, wait, viewer+" gets EventUpdate for node-1", func() bool {
				return n.hasEvent(EventUpdate, "node-1", want)
			})
			if !n.sees("node-1", StatusAlive, want) {
				t.Errorf("%s: Members does not show node-1's new tags", viewer)
			}
		}
		if !n1.sees("node-1", StatusAlive, want) {
			t.Error("node-1 does not see its own new tags")
		}
	})

	t.Run("Shutdown looks like a failure", func(t *testing.T) {
		if err := n3.m.Shutdown(); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		select {
		case <-n3.done:
		case <-time.After(wait):
			t.Fatal("Events not closed after Shutdown")
		}
		if err := n3.m.Shutdown(); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
		if err := n3.m.Leave(); err != nil {
			t.Fatalf("Leave after Shutdown: %v", err)
		}
		if err := n3.m.SetTags(nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("SetTags after Shutdown = %v, want ErrClosed", err)
		}
		for _, viewer := range []string{"node-1", "node-2"} {
			n := nodes[viewer]
			waitFor(t, wait, viewer+" gets EventFailed for node-3", func() bool {
				return n.hasEvent(EventFailed, "node-3", nil)
			})
			waitFor(t, wait, viewer+" sees node-3 failed", func() bool {
				return n.sees("node-3", StatusFailed, nil)
			})
			if n.hasEvent(EventLeave, "node-3", nil) {
				t.Errorf("%s got EventLeave for node-3, which crashed", viewer)
			}
		}
	})

	t.Run("Leave is graceful", func(t *testing.T) {
		// A leave is gossiped best effort: it reaches node-1 when the two
		// see each other alive as it goes out (not still probing node-3's
		// failure, which the previous subtest has just settled).
		waitFor(t, wait, "node-1 and node-2 to see each other alive", func() bool {
			return n1.sees("node-2", StatusAlive, nil) && n2.sees("node-1", StatusAlive, nil)
		})
		if err := n2.m.Leave(); err != nil {
			t.Fatalf("Leave: %v", err)
		}
		select {
		case <-n2.done:
		case <-time.After(wait):
			t.Fatal("Events not closed after Leave")
		}
		if err := n2.m.Leave(); err != nil {
			t.Fatalf("second Leave: %v", err)
		}
		if err := n2.m.Shutdown(); err != nil {
			t.Fatalf("Shutdown after Leave: %v", err)
		}
		waitFor(t, wait, "node-1 gets EventLeave for node-2", func() bool {
			return n1.hasEvent(EventLeave, "node-2", nil)
		})
		waitFor(t, wait, "node-1 sees node-2 left", func() bool {
			return n1.sees("node-2", StatusLeft, nil)
		})
		if n1.hasEvent(EventFailed, "node-2", nil) {
			t.Error("node-1 got EventFailed for node-2, which left gracefully")
		}
		if !n1.sees("node-1", StatusAlive, nil) {
			t.Error("node-1 no longer sees itself alive")
		}
	})
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.NodeName = "node-1"
		c.BindAddr = "127.0.0.1:7946"
		return c
	}
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{"missing name", func(c *Config) { c.NodeName = "" }},
		{"name too long", func(c *Config) { c.NodeName = strings.Repeat("n", maxNodeNameLen+1) }},
		{"empty bind addr", func(c *Config) { c.BindAddr = "" }},
		{"bind addr without port", func(c *Config) { c.BindAddr = "127.0.0.1" }},
		{"bind addr port out of range", func(c *Config) { c.BindAddr = "127.0.0.1:65536" }},
		{"bind addr port not a number", func(c *Config) { c.BindAddr = "127.0.0.1:serf" }},
		{"bind addr hostname", func(c *Config) { c.BindAddr = "localhost:7946" }},
		{"advertise unspecified", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }},
		{"advertise bad port", func(c *Config) { c.AdvertiseAddr = "10.0.0.1:x" }},
		{"advertise garbage", func(c *Config) { c.AdvertiseAddr = "a:b:c" }},
		{"peer without port", func(c *Config) { c.Peers = []string{"127.0.0.1"} }},
		{"peer port 0", func(c *Config) { c.Peers = []string{"127.0.0.1:0"} }},
		{"peer without host", func(c *Config) { c.Peers = []string{":7946"} }},
		{"negative rejoin interval", func(c *Config) { c.RejoinInterval = -time.Second }},
		{"tags too big", func(c *Config) { c.Tags = map[string]string{"k": strings.Repeat("v", 506)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.modify(&c)
			if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
			m, err := New(c)
			if !errors.Is(err, ErrInvalidConfig) {
				if m != nil {
					m.Shutdown()
				}
				t.Fatalf("New = %v, want ErrInvalidConfig", err)
			}
		})
	}

	t.Run("valid fills defaults", func(t *testing.T) {
		c := valid()
		c.RejoinInterval = 0
		c.AdvertiseAddr = "[::1]:7000"
		c.Peers = []string{"node-2:7946", "[::1]:7946"}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if c.Logger == nil || c.RejoinInterval != time.Second {
			t.Fatalf("defaults not filled: logger %v, rejoin interval %v", c.Logger, c.RejoinInterval)
		}
		for _, bind := range []string{":7946", "0.0.0.0:7946", "[::]:7946", "127.0.0.1:0"} {
			c.BindAddr = bind
			if err := c.Validate(); err != nil {
				t.Errorf("Validate with bind %q: %v", bind, err)
			}
		}
	})
}

// TestTagsAtSizeLimit checks that Validate's size bound agrees with serf:
// tags right at the limit start.
func TestTagsAtSizeLimit(t *testing.T) {
	cfg := nodeConfig(testLogger(t), "node-1", "127.0.0.1:0")
	// 1 magic + 1 map header + 2 for "k" + 3 + 505 for the value = 512.
	cfg.Tags = map[string]string{"k": strings.Repeat("v", 505)}
	n := startNode(t, cfg)
	if mb, ok := n.member("node-1"); !ok || mb.Tags["k"] != cfg.Tags["k"] {
		t.Fatalf("own tags not as configured: %+v", mb)
	}
}

func TestAdvertiseResolution(t *testing.T) {
	tests := []struct {
		bind, advertise string
		wantHost        string
		wantPort        int
	}{
		{"127.0.0.1:7000", "", "", 7000},
		{"0.0.0.0:7000", "", "", 7000},
		{"0.0.0.0:7000", "10.1.2.3", "10.1.2.3", 7000},
		{"0.0.0.0:7000", "10.1.2.3:8000", "10.1.2.3", 8000},
		{"0.0.0.0:7000", "[fd00::1]", "fd00::1", 7000},
		{"0.0.0.0:7000", "fd00::1", "fd00::1", 7000},
		{"0.0.0.0:7000", "[fd00::1]:8000", "fd00::1", 8000},
	}
	for _, tt := range tests {
		cfg := DefaultConfig()
		cfg.NodeName = "n"
		cfg.BindAddr = tt.bind
		cfg.AdvertiseAddr = tt.advertise
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Validate(%q, %q): %v", tt.bind, tt.advertise, err)
		}
		sc, err := serfConfig(t.Context(), &cfg, nil)
		if err != nil {
			t.Fatalf("serfConfig(%q, %q): %v", tt.bind, tt.advertise, err)
		}
		mc := sc.MemberlistConfig
		if mc.AdvertiseAddr != tt.wantHost || mc.AdvertisePort != tt.wantPort {
			t.Errorf("bind %q advertise %q: memberlist advertises %q:%d, want %q:%d",
				tt.bind, tt.advertise, mc.AdvertiseAddr, mc.AdvertisePort, tt.wantHost, tt.wantPort)
		}
		if !sc.RejoinAfterLeave || sc.SnapshotPath != "" {
			t.Errorf("serf config: RejoinAfterLeave %v, SnapshotPath %q", sc.RejoinAfterLeave, sc.SnapshotPath)
		}
	}
}

// TestSlowConsumer checks that serf's events keep being taken off its
// channel while nobody reads Events, and are then delivered in order.
func TestSlowConsumer(t *testing.T) {
	const total = 3 * serfEventBuffer
	m := &Membership{
		log:         testLogger(t),
		serfEvents:  make(chan serf.Event), // unbuffered: every send needs forward
		events:      make(chan Event, eventsBuffer),
		stopForward: make(chan struct{}),
	}
	m.goFunc(m.forward)

	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range total {
			m.serfEvents <- serf.MemberEvent{Type: serf.EventMemberJoin, Members: []serf.Member{
				{Name: fmt.Sprintf("node-%d", i), Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Status: serf.StatusAlive},
			}}
		}
		m.serfEvents <- &serf.Query{Name: "ignored"}
		m.serfEvents <- serf.UserEvent{Name: "ignored"}
	}()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("serf's event channel blocked while the consumer was not reading")
	}

	for i := range total {
		select {
		case e := <-m.Events():
			if e.Type != EventJoin || e.Member.Name != fmt.Sprintf("node-%d", i) || e.Member.Addr != "127.0.0.1:7946" {
				t.Fatalf("event %d = %+v", i, e)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d never delivered", i)
		}
	}
	close(m.stopForward)
	m.wg.Wait()
	if e, ok := <-m.Events(); ok {
		t.Fatalf("unexpected event %+v; user events and queries must be ignored", e)
	}
}

func TestStrings(t *testing.T) {
	for s, want := range map[Status]string{StatusAlive: "alive", StatusLeaving: "leaving", StatusLeft: "left", StatusFailed: "failed", Status(42): "Status(42)"} {
		if got := s.String(); got != want {
			t.Errorf("Status %d: %q, want %q", int(s), got, want)
		}
	}
	for e, want := range map[EventType]string{EventJoin: "join", EventLeave: "leave", EventFailed: "failed", EventUpdate: "update", EventReap: "reap", EventType(-1): "EventType(-1)"} {
		if got := e.String(); got != want {
			t.Errorf("EventType %d: %q, want %q", int(e), got, want)
		}
	}
}
