package membership

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
)

// DefaultBindAddr is serf's customary port on every interface.
const DefaultBindAddr = "0.0.0.0:7946"

// maxNodeNameLen bounds node names; they travel in every gossip message.
const maxNodeNameLen = 128

// Config configures a Membership.
type Config struct {
	// NodeName is the serf node name, which is the mlog node id
	// (e.g. "node-1"). Required and unique in the cluster.
	NodeName string

	// BindAddr is the host:port serf listens on, TCP and UDP alike. The
	// host must be an IP literal; an empty host or 0.0.0.0/:: means every
	// interface. Port 0 lets the kernel choose.
	BindAddr string

	// AdvertiseAddr is the host or host:port other nodes use to reach this
	// one. "" means BindAddr (on 0.0.0.0 memberlist picks a private IP);
	// a host without a port gets BindAddr's port; a hostname is resolved
	// once at New.
	AdvertiseAddr string

	// Tags are gossiped to every member, e.g. {"id": "node-1", "kafka":
	// "host:9094", "raft": "host:9093"}. Serf limits their encoded size to
	// 512 bytes.
	Tags map[string]string

	// Peers are host:port addresses of other nodes' serf, joined in the
	// background.
	Peers []string

	// RejoinInterval is how long the background joiner waits between
	// attempts until at least one peer answers; after the first success it
	// stops and serf's own reconnect logic takes over. 0 means 1s.
	RejoinInterval time.Duration

	// Local selects memberlist's local-network timings and short serf
	// reap/reconnect timeouts, for nodes on one host or a fast local
	// network: a failed node is seen within a few seconds. false means
	// memberlist's LAN timings.
	Local bool

	// Logger receives this package's logs; serf's and memberlist's own log
	// lines are routed here at debug level. nil means slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every optional field set. NodeName
// must still be filled in.
func DefaultConfig() Config {
	return Config{
		BindAddr:       DefaultBindAddr,
		RejoinInterval: time.Second,
	}
}

// Validate checks the settings and fills in the seams left empty (Logger,
// RejoinInterval). It does no network I/O; hostnames in AdvertiseAddr and
// Peers are resolved later.
func (c *Config) Validate() error {
	switch {
	case c.NodeName == "":
		return fmt.Errorf("%w: node name is required", ErrInvalidConfig)
	case len(c.NodeName) > maxNodeNameLen:
		return fmt.Errorf("%w: node name is %d bytes, at most %d allowed", ErrInvalidConfig, len(c.NodeName), maxNodeNameLen)
	case c.RejoinInterval < 0:
		return fmt.Errorf("%w: rejoin interval %v is negative", ErrInvalidConfig, c.RejoinInterval)
	}
	// Serf checks this too, but only after starting goroutines it never
	// stops on that error path.
	if n := encodedTagsSize(c.Tags); n > memberlist.MetaMaxSize {
		return fmt.Errorf("%w: tags encode to %d bytes, at most %d allowed", ErrInvalidConfig, n, memberlist.MetaMaxSize)
	}
	if _, _, err := parseBindAddr(c.BindAddr); err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		host, _, _, err := parseHostOptionalPort(c.AdvertiseAddr)
		if err != nil {
			return fmt.Errorf("%w: advertise addr: %v", ErrInvalidConfig, err)
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("%w: advertise addr %q: other nodes cannot reach an unspecified address", ErrInvalidConfig, c.AdvertiseAddr)
		}
	}
	for _, p := range c.Peers {
		host, port, err := net.SplitHostPort(p)
		if err != nil {
			return fmt.Errorf("%w: peer %q: %v", ErrInvalidConfig, p, err)
		}
		if host == "" {
			return fmt.Errorf("%w: peer %q has no host", ErrInvalidConfig, p)
		}
		if n, err := parsePort(port); err != nil || n == 0 {
			return fmt.Errorf("%w: peer %q: port must be in [1, 65535]", ErrInvalidConfig, p)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = time.Second
	}
	return nil
}

// parseBindAddr splits BindAddr into an IP literal (empty host becomes
// 0.0.0.0) and a port.
func parseBindAddr(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: bind addr %q: %v", ErrInvalidConfig, addr, err)
	}
	n, err := parsePort(port)
	if err != nil {
		return "", 0, fmt.Errorf("%w: bind addr %q: %v", ErrInvalidConfig, addr, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%w: bind addr %q: host must be an IP address", ErrInvalidConfig, addr)
	}
	return host, n, nil
}

// parseHostOptionalPort accepts "host", "host:port", "[v6]", "[v6]:port"
// and a bare IPv6 literal. hasPort reports whether a port was given.
func parseHostOptionalPort(addr string) (host string, port int, hasPort bool, err error) {
	if ip := net.ParseIP(addr); ip != nil {
		return addr, 0, false, nil
	}
	if h, p, splitErr := net.SplitHostPort(addr); splitErr == nil {
		n, err := parsePort(p)
		if err != nil {
			return "", 0, false, fmt.Errorf("%q: %v", addr, err)
		}
		if h == "" {
			return "", 0, false, fmt.Errorf("%q has no host", addr)
		}
		return h, n, true, nil
	}
	if inner, ok := strings.CutPrefix(addr, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if ok && net.ParseIP(inner) != nil {
			return inner, 0, false, nil
		}
		return "", 0, false, fmt.Errorf("%q is neither host nor host:port", addr)
	}
	if addr == "" || strings.ContainsAny(addr, ":/[] \t") {
		return "", 0, false, fmt.Errorf("%q is neither host nor host:port", addr)
	}
	return addr, 0, false, nil
}

func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return 0, fmt.Errorf("port %q not in [0, 65535]", s)
	}
	return n, nil
}

// resolveAdvertise turns cfg.AdvertiseAddr into the IP and port memberlist
// advertises. An empty IP leaves the choice to memberlist.
func resolveAdvertise(ctx context.Context, cfg *Config, bindPort int) (string, int, error) {
	if cfg.AdvertiseAddr == "" {
		return "", bindPort, nil
	}
	host, port, hasPort, err := parseHostOptionalPort(cfg.AdvertiseAddr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: advertise addr: %v", ErrInvalidConfig, err)
	}
	if !hasPort {
		port = bindPort
	}
	if net.ParseIP(host) != nil {
		return host, port, nil
	}
	// memberlist only takes an IP; resolve once, preferring IPv4 like
	// memberlist does for its own addresses.
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return "", 0, fmt.Errorf("membership: resolve advertise addr %q: %w", host, err)
	}
	if len(ips) == 0 {
		return "", 0, fmt.Errorf("membership: resolve advertise addr %q: no addresses", host)
	}
	chosen := ips[0].IP
	for _, ip := range ips {
		if ip.IP.To4() != nil {
			chosen = ip.IP
			break
		}
	}
	return chosen.String(), port, nil
}

// serfConfig builds serf's configuration from a validated Config.
func serfConfig(ctx context.Context, cfg *Config, eventCh chan<- serf.Event) (*serf.Config, error) {
	bindHost, bindPort, err := parseBindAddr(cfg.BindAddr)
	if err != nil {
		return nil, err
	}
	advHost, advPort, err := resolveAdvertise(ctx, cfg, bindPort)
	if err != nil {
		return nil, err
	}

	stdLogger := log.New(stdlogWriter{log: cfg.Logger.With("component", "serf")}, "", 0)

	sc := serf.DefaultConfig()
	sc.NodeName = cfg.NodeName
	sc.Tags = copyTags(cfg.Tags)
	sc.EventCh = eventCh
	sc.Logger = stdLogger
	sc.LogOutput = nil
	sc.RejoinAfterLeave = true
	sc.SnapshotPath = ""

	if cfg.Local {
		sc.MemberlistConfig = memberlist.DefaultLocalConfig()
		sc.ReapInterval = time.Second
		sc.ReconnectInterval = time.Second
		// Long enough for a test to observe a failed or left member in
		// Members() before it is reaped, short enough to see the reap.
		sc.ReconnectTimeout = 10 * time.Second
		sc.TombstoneTimeout = 10 * time.Second
		// Serf's default: stay up a second after the leave to answer
		// probes and retransmit it (at 500 ms a loaded host lost it
		// about one leave in eight).
		sc.LeavePropagateDelay = time.Second
	} else {
		sc.MemberlistConfig = memberlist.DefaultLANConfig()
		// A failed broker is declared dead after 2 probe intervals of
		// suspicion (memberlist's LAN default is 4): partition leadership
		// moves within about 3 s of a crash. Lifeguard's awareness still
		// stretches probes on a node that is itself slow, which keeps
		// false positives down.
		sc.MemberlistConfig.SuspicionMult = 2
	}
	mc := sc.MemberlistConfig
	mc.Logger = stdLogger
	mc.LogOutput = nil
	mc.BindAddr = bindHost
	mc.BindPort = bindPort
	mc.AdvertiseAddr = advHost
	mc.AdvertisePort = advPort
	return sc, nil
}

// encodedTagsSize is an upper bound of the size serf gives tags on the
// wire: a magic byte and a msgpack map of strings (old-spec raw strings,
// whose headers are never shorter than the bound used here).
func encodedTagsSize(tags map[string]string) int {
	n := 1 + msgpackHeaderSize(len(tags), 15)
	for k, v := range tags {
		n += msgpackHeaderSize(len(k), 31) + len(k) + msgpackHeaderSize(len(v), 31) + len(v)
	}
	return n
}

// msgpackHeaderSize is the size of a msgpack map or string header for a
// length l; fixMax is the largest length the one-byte form holds.
func msgpackHeaderSize(l, fixMax int) int {
	switch {
	case l <= fixMax:
		return 1
	case l <= 0xffff:
		return 3
	default:
		return 5
	}
}

func copyTags(tags map[string]string) map[string]string {
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		out[k] = v
	}
	return out
}
