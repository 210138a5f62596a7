//go:build linux

package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Names the harness owns. Every namespace is nsPrefix+<run id>+"-"+<role>,
// the one link in the root namespace is linkPrefix+<run id>; nothing else
// is ever created, changed or deleted.
const (
	nsPrefix   = "mlogc-"
	linkPrefix = "mlc"
	netnsDir   = "/run/netns"
	lockDir    = "/run/mlogc"
	// Node i of run k has address 10.213.k.(10+i); the root namespace's end
	// is 10.213.k.1. Each run holds a lock on its k, so parallel runs never
	// share a subnet.
	subnetPrefix = "10.213."
)

// Network is one run's private network: a hub namespace holding a bridge,
// one namespace per node with a veth into the bridge, and a veth from the
// root namespace into the bridge so that the test process reaches every
// node as a client would. Packets between nodes cross only the hub's
// bridge, where no firewall rule applies; faults are rules inside a node's
// own namespace.
type Network struct {
	RunID  string
	HostIP string // the root namespace's address on the bridge

	subnet int
	hub    string
	link   string
	nodes  []string // namespace names, index 0 is node 1
	ips    []string
	locks  []*os.File
}

// NS returns node i's namespace (i counts from 1).
func (nw *Network) NS(i int) string { return nw.nodes[i-1] }

// IP returns node i's address.
func (nw *Network) IP(i int) string { return nw.ips[i-1] }

// Nodes returns how many node namespaces there are.
func (nw *Network) Nodes() int { return len(nw.nodes) }

// NewNetwork removes what earlier runs left behind (only runs whose owner
// is gone) and builds a network of n node namespaces. On error everything
// built so far is removed.
func NewNetwork(n int) (nw *Network, err error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("chaos: lock dir: %w", err)
	}
	CleanStale()
	nw = &Network{}
	defer func() {
		if err != nil {
			_ = nw.Close()
			nw = nil
		}
	}()
	// The run lock is taken before any namespace exists, so a namespace
	// whose run lock is free belongs to a run that is gone.
	for {
		nw.RunID = randomID()
		f, ok, err := tryLock(filepath.Join(lockDir, nw.RunID+".lock"))
		if err != nil {
			return nw, err
		}
		if ok {
			nw.locks = append(nw.locks, f)
			break
		}
	}
	if err := nw.pickSubnet(); err != nil {
		return nw, err
	}
	nw.hub = nsPrefix + nw.RunID + "-hub"
	nw.link = linkPrefix + nw.RunID
	nw.HostIP = fmt.Sprintf("%s%d.1", subnetPrefix, nw.subnet)
	cidr := func(ip string) string { return ip + "/24" }
	steps := [][]string{
		{"netns", "add", nw.hub},
		{"-n", nw.hub, "link", "set", "lo", "up"},
		{"-n", nw.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", nw.hub, "link", "set", "br0", "up"},
		{"link", "add", nw.link, "type", "veth", "peer", "name", "host", "netns", nw.hub},
		{"-n", nw.hub, "link", "set", "host", "master", "br0", "up"},
		{"addr", "add", cidr(nw.HostIP), "dev", nw.link},
		{"link", "set", nw.link, "up"},
	}
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("%s%s-n%d", nsPrefix, nw.RunID, i)
		ip := fmt.Sprintf("%s%d.%d", subnetPrefix, nw.subnet, 10+i)
		nw.nodes, nw.ips = append(nw.nodes, ns), append(nw.ips, ip)
		port := fmt.Sprintf("n%d", i)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"-n", nw.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			[]string{"-n", nw.hub, "link", "set", port, "master", "br0", "up"},
			[]string{"-n", ns, "addr", "add", cidr(ip), "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
		)
	}
	for _, s := range steps {
		if _, err := ipCmd(s...); err != nil {
			return nw, err
		}
	}
	return nw, nil
}

// pickSubnet locks a k no other live run holds and no route of the root
// namespace already covers.
func (nw *Network) pickSubnet() error {
	routes, err := ipCmd("-4", "route", "show")
	if err != nil {
		return err
	}
	for k := 1; k < 255; k++ {
		if strings.Contains(routes, fmt.Sprintf("%s%d.", subnetPrefix, k)) {
			continue
		}
		f, ok, err := tryLock(filepath.Join(lockDir, fmt.Sprintf("net-%d.lock", k)))
		if err != nil {
			return err
		}
		if ok {
			nw.locks = append(nw.locks, f)
			nw.subnet = k
			return nil
		}
	}
	return errors.New("chaos: every 10.213.k.0/24 is in use")
}

// Close deletes the namespaces and the root link and releases the locks.
// Processes inside the namespaces must be dead first (the caller kills
// them; leftovers are killed here). Safe to call twice.
func (nw *Network) Close() error {
	var errs []error
	all := append(append([]string(nil), nw.nodes...), nw.hub)
	for _, ns := range all {
		if ns == "" || !nsExists(ns) {
			continue
		}
		killNS(ns)
		if _, err := ipCmd("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	// Deleting the hub destroys the veth's far end and so the near end,
	// but the kernel does it asynchronously: delete it ourselves.
	if nw.link != "" && linkExists(nw.link) {
		_, _ = ipCmd("link", "del", nw.link)
	}
	for _, f := range nw.locks {
		if filepath.Base(f.Name()) == nw.RunID+".lock" {
			_ = os.Remove(f.Name())
		}
		_ = f.Close()
	}
	nw.nodes, nw.hub, nw.link, nw.locks = nil, "", "", nil
	return errors.Join(errs...)
}

// CleanStale removes the namespaces and root links of earlier runs whose
// process is gone (their run lock is free). Best effort: errors are
// ignored, a live run's names are never touched.
func CleanStale() {
	ids := map[string]bool{}
	if ents, err := os.ReadDir(netnsDir); err == nil {
		for _, e := range ents {
			if id, ok := runIDOf(e.Name()); ok {
				ids[id] = true
			}
		}
	}
	// A run that died leaves its lock file; links of ids with neither a
	// namespace nor a lock file are not the harness's to touch.
	if ents, err := os.ReadDir(lockDir); err == nil {
		for _, e := range ents {
			if id, ok := strings.CutSuffix(e.Name(), ".lock"); ok && validID(id) {
				ids[id] = true
			}
		}
	}
	for id := range ids {
		path := filepath.Join(lockDir, id+".lock")
		f, free, err := tryLock(path)
		if err != nil || !free {
			continue
		}
		if ents, err := os.ReadDir(netnsDir); err == nil {
			for _, e := range ents {
				if got, ok := runIDOf(e.Name()); ok && got == id {
					killNS(e.Name())
					_, _ = ipCmd("netns", "del", e.Name())
				}
			}
		}
		if linkExists(linkPrefix + id) {
			_, _ = ipCmd("link", "del", linkPrefix+id)
		}
		_ = os.Remove(path)
		_ = f.Close()
	}
}

// DialFrom opens a TCP connection to addr from inside node i's namespace
// and closes it: nil means node i can reach addr.
func (nw *Network) DialFrom(i int, addr string, timeout time.Duration) error {
	return inNS(nw.NS(i), func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// inNS runs f on an OS thread moved into namespace ns. The thread is never
// handed back to the scheduler: it exits with the goroutine.
func inNS(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // no Unlock: the thread dies with its namespace
		fd, err := os.Open(filepath.Join(netnsDir, ns))
		if err != nil {
			errc <- err
			return
		}
		defer fd.Close()
		if err := unix.Setns(int(fd.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("chaos: setns %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// ipCmd runs ip(8) with a deadline and returns its output.
func ipCmd(args ...string) (string, error) {
	return command("ip", args...)
}

func command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("chaos: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// killNS SIGKILLs every process inside namespace ns.
func killNS(ns string) {
	out, err := ipCmd("netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func nsExists(ns string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, ns))
	return err == nil
}

func linkExists(name string) bool {
	_, err := net.InterfaceByName(name)
	return err == nil
}

// tryLock opens path and takes an exclusive flock without waiting. ok is
// false, and the file closed, when another process holds it.
func tryLock(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("chaos: lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("chaos: lock %s: %w", path, err)
	}
	return f, true, nil
}

const idChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomID is a 5-character run id: short enough that linkPrefix+id fits
// an interface name (15 bytes).
func randomID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idChars[int(b[i])%len(idChars)]
	}
	return string(b)
}

func validID(id string) bool {
	if len(id) != 5 {
		return false
	}
	for _, c := range id {
		if !strings.ContainsRune(idChars, c) {
			return false
		}
	}
	return true
}

// runIDOf returns the run id of one of the harness's namespace names.
func runIDOf(ns string) (string, bool) {
	rest, ok := strings.CutPrefix(ns, nsPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "-")
	return id, ok && validID(id)
}
