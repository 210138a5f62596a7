package cli

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/mlog/mlog/broker"
)

// listenerFlags are --listeners, --advertised-listeners,
// --listener-security-protocol-map and --inter-broker-listener-name, in
// Kafka's forms.
type listenerFlags struct {
	listeners, advertised, protocolMap []string
	interBroker                        string
}

// parseEndpoints reads "NAME://host:port" entries into name → host:port,
// keeping their order in names.
func parseEndpoints(flag string, entries []string) (names []string, addrs map[string]string, err error) {
	addrs = map[string]string{}
	for _, e := range entries {
		name, addr, ok := strings.Cut(e, "://")
		if !ok || name == "" {
			return nil, nil, fmt.Errorf("--%s %q: want NAME://host:port, e.g. PLAINTEXT://127.0.0.1:9094", flag, e)
		}
		name = strings.ToUpper(name)
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, nil, fmt.Errorf("--%s %q: want NAME://host:port: %w", flag, e, err)
		}
		if _, dup := addrs[name]; dup {
			return nil, nil, fmt.Errorf("--%s: listener %s named twice", flag, name)
		}
		names = append(names, name)
		addrs[name] = addr
	}
	return names, addrs, nil
}

// brokerListeners builds the broker's listeners; none without
// --listeners. A listener bound to every address is advertised under
// advertiseHost, else the host name, unless --advertised-listeners names
// it.
func (f *listenerFlags) brokerListeners(advertiseHost string) ([]broker.Listener, error) {
	if len(f.listeners) == 0 {
		if len(f.advertised)+len(f.protocolMap) > 0 || f.interBroker != "" {
			return nil, fmt.Errorf("--advertised-listeners, --listener-security-protocol-map and --inter-broker-listener-name need --listeners")
		}
		return nil, nil
	}
	names, addrs, err := parseEndpoints("listeners", f.listeners)
	if err != nil {
		return nil, err
	}
	_, adv, err := parseEndpoints("advertised-listeners", f.advertised)
	if err != nil {
		return nil, err
	}
	protocols := map[string]string{}
	for _, e := range f.protocolMap {
		name, proto, ok := strings.Cut(e, ":")
		if !ok || name == "" || proto == "" {
			return nil, fmt.Errorf("--listener-security-protocol-map %q: want NAME:PROTOCOL, e.g. INTERNAL:SASL_SSL", e)
		}
		protocols[strings.ToUpper(name)] = strings.ToUpper(proto)
	}
	for name := range adv {
		if _, ok := addrs[name]; !ok {
			return nil, fmt.Errorf("--advertised-listeners names %s, which --listeners does not", name)
		}
	}
	var out []broker.Listener
	for _, name := range names {
		proto, ok := protocols[name]
		if !ok {
			proto = name // PLAINTEXT://… is a PLAINTEXT listener, as in Kafka
		}
		switch proto {
		case broker.ProtocolPlaintext, broker.ProtocolSSL, broker.ProtocolSASLPlaintext, broker.ProtocolSASLSSL:
		default:
			return nil, fmt.Errorf("listener %s: no security protocol: name it PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, or map it with --listener-security-protocol-map %s:PROTOCOL", name, name)
		}
		l := broker.Listener{Name: name, Protocol: proto, Addr: addrs[name], Advertised: adv[name]}
		if host, port, _ := net.SplitHostPort(l.Addr); l.Advertised == "" && (host == "" || host == "0.0.0.0" || host == "::") {
			// Clients cannot connect to "any address": tell them a name.
			if advertiseHost == "" {
				if advertiseHost, err = os.Hostname(); err != nil {
					return nil, fmt.Errorf("listener %s listens everywhere and the host name is unknown: set --advertised-listeners", name)
				}
			}
			l.Advertised = net.JoinHostPort(advertiseHost, port)
		}
		out = append(out, l)
	}
	if f.interBroker != "" {
		if _, ok := addrs[strings.ToUpper(f.interBroker)]; !ok {
			return nil, fmt.Errorf("--inter-broker-listener-name %s: not among --listeners", f.interBroker)
		}
	}
	return out, nil
}

// firstPort is the port of the first listener, from which --http-addr
// auto derives its port.
func firstPort(ls []broker.Listener) int {
	_, port, _ := net.SplitHostPort(ls[0].Addr)
	p, _ := strconv.Atoi(port)
	return p
}
