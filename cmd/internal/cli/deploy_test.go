package cli

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	"github.com/mlog/mlog/broker"
)

// serverConfigOf parses args as `mlog server` would (env as given) and
// returns the broker config they make.
func serverConfigOf(t *testing.T, args []string, env map[string]string) broker.Config {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	cmd, f := newServerCmd()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatalf("the server rejects %v: %v", args, err)
	}
	if err := applyEnv(cmd.Flags()); err != nil {
		t.Fatal(err)
	}
	cfg, err := f.brokerConfig()
	if err != nil {
		t.Fatalf("server config from %v: %v", args, err)
	}
	return cfg
}

// The Kubernetes manifests decode strictly into the Kubernetes API types
// (an unknown or misspelt field fails), and what they say agrees with the
// binary: the container's flags parse; its probes ask /readyz and /healthz
// on the --http-addr port; the ports named are the ones the flags listen
// on; the volume is mounted at --data-dir; each pod's name is its node id
// and pod 0 bootstraps; the headless Service publishes pods before they
// are ready; the PodDisruptionBudget covers the pods and allows one down;
// the grace period leaves time for a controlled shutdown.
func TestKubernetesManifests(t *testing.T) {
	raw, err := os.ReadFile("../../../infra/k8s/mlog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var (
		sts      appsv1.StatefulSet
		services []corev1.Service
		pdb      policyv1.PodDisruptionBudget
	)
	for _, doc := range bytes.Split(raw, []byte("\n---\n")) {
		var head struct{ Kind string }
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		var err error
		switch head.Kind {
		case "StatefulSet":
			err = yaml.UnmarshalStrict(doc, &sts)
		case "Service":
			var s corev1.Service
			err = yaml.UnmarshalStrict(doc, &s)
			services = append(services, s)
		case "PodDisruptionBudget":
			err = yaml.UnmarshalStrict(doc, &pdb)
		default:
			t.Fatalf("unexpected kind %q", head.Kind)
		}
		if err != nil {
			t.Fatalf("%s: %v", head.Kind, err)
		}
	}
	labels := sts.Spec.Template.Labels
	var headless *corev1.Service
	for i, s := range services {
		for k, v := range s.Spec.Selector {
			if labels[k] != v {
				t.Errorf("service %s selects %s=%s, which the pods lack", s.Name, k, v)
			}
		}
		if s.Name == sts.Spec.ServiceName {
			headless = &services[i]
		}
	}
	if headless == nil || headless.Spec.ClusterIP != corev1.ClusterIPNone || !headless.Spec.PublishNotReadyAddresses {
		t.Fatalf("the StatefulSet's service %q must be headless and publish not-ready pods: %+v", sts.Spec.ServiceName, headless)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas != 3 || sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType ||
		sts.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement {
		t.Errorf("want 3 replicas, ordered, rolling: %+v", sts.Spec)
	}
	if g := sts.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g < 30 {
		t.Errorf("termination grace %v: a controlled shutdown needs at least 30 s", g)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if labels[k] != v {
			t.Errorf("the PodDisruptionBudget selects %s=%s, which the pods lack", k, v)
		}
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}

	c := sts.Spec.Template.Spec.Containers[0]
	if c.Args[0] != "server" {
		t.Fatalf("container args %v: want `server ...`", c.Args)
	}
	// Kubernetes expands $(VAR) from the container's env: pod mlog-1.
	pod, ns := sts.Name+"-1", "prod"
	expand := strings.NewReplacer("$(POD_NAME)", pod, "$(POD_NAMESPACE)", ns)
	var args []string
	for _, a := range c.Args[1:] {
		args = append(args, expand.Replace(a))
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.FieldRef == nil {
			t.Fatalf("env %s: want a field of the pod", e.Name)
		}
		switch e.ValueFrom.FieldRef.FieldPath {
		case "metadata.name":
			env[e.Name] = pod
		case "metadata.namespace":
			env[e.Name] = ns
		default:
			t.Fatalf("env %s from %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
		}
	}
	cfg := serverConfigOf(t, args, env)
	if cfg.NodeID != pod || broker.KafkaNodeID(cfg.NodeID) != 1 {
		t.Errorf("node id %q, want the pod's name %q (broker 1)", cfg.NodeID, pod)
	}
	if cfg.Cluster.Bootstrap {
		t.Error("pod 1 bootstraps: only pod 0 may")
	}
	if len(cfg.Cluster.Peers) != 3 {
		t.Errorf("peers %v: want every pod", cfg.Cluster.Peers)
	}
	for _, p := range cfg.Cluster.Peers {
		if !strings.Contains(p, "."+sts.Spec.ServiceName+"."+ns+".svc") {
			t.Errorf("peer %s is not a pod of the headless service", p)
		}
	}
	if cfg.Cluster.AdvertiseHost != pod+"."+sts.Spec.ServiceName+"."+ns+".svc.cluster.local" {
		t.Errorf("advertised host %q", cfg.Cluster.AdvertiseHost)
	}
	env0 := map[string]string{}
	for k, v := range env {
		env0[k] = strings.Replace(v, pod, sts.Name+"-0", 1)
	}
	if cfg0 := serverConfigOf(t, strings.Split(strings.ReplaceAll(strings.Join(args, "\x00"), pod, sts.Name+"-0"), "\x00"), env0); !cfg0.Cluster.Bootstrap {
		t.Error("pod 0 does not bootstrap")
	}

	port := func(name string) int32 {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
		t.Fatalf("no container port %q", name)
		return 0
	}
	_, httpPort, _ := net.SplitHostPort(cfg.HTTPAddr)
	_, serfPort, _ := net.SplitHostPort(cfg.Cluster.SerfAddr)
	_, raftPort, _ := net.SplitHostPort(cfg.Cluster.RaftAddr)
	_, kafkaPort, _ := net.SplitHostPort(cfg.ListenAddr)
	for name, want := range map[string]string{"http": httpPort, "serf": serfPort, "raft": raftPort, "kafka": kafkaPort} {
		if strconv.Itoa(int(port(name))) != want {
			t.Errorf("container port %s is %d, the flags listen on %s", name, port(name), want)
		}
	}
	for probe, path := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != path || probe.HTTPGet.Port.String() != "http" {
			t.Errorf("probe %+v: want GET %s on the http port", probe, path)
		}
	}
	mounted := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == cfg.DataDir })
	if mounted < 0 {
		t.Fatalf("nothing mounted at --data-dir %s", cfg.DataDir)
	}
	if claims := sts.Spec.VolumeClaimTemplates; len(claims) != 1 || claims[0].Name != c.VolumeMounts[mounted].Name {
		t.Errorf("the data volume is not a per-pod claim: %+v", claims)
	}
}

// The systemd unit runs `mlog server` with the env file's MLOG_ variables:
// together they make a valid config for the node the file names, and the
// unit stops it with SIGTERM and time for a controlled shutdown.
func TestSystemdUnit(t *testing.T) {
	unit, err := os.ReadFile("../../../infra/systemd/mlog.service")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			keys[k] = v
		}
	}
	fields := strings.Fields(keys["ExecStart"])
	if len(fields) < 2 || fields[1] != "server" || keys["KillSignal"] != "SIGTERM" || keys["TimeoutStopSec"] == "" || keys["EnvironmentFile"] == "" {
		t.Fatalf("unit: %v", keys)
	}
	envRaw, err := os.ReadFile("../../../infra/systemd/mlog.env")
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(envRaw), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	cfg := serverConfigOf(t, fields[2:], env)
	if cfg.NodeID != "node-1" || !cfg.Cluster.Bootstrap || len(cfg.Cluster.Peers) != 2 || cfg.DataDir != "/var/lib/mlog" ||
		!strings.Contains(keys["ReadWritePaths"], cfg.DataDir) {
		t.Errorf("config from the unit: node %s bootstrap %t peers %v data %s", cfg.NodeID, cfg.Cluster.Bootstrap, cfg.Cluster.Peers, cfg.DataDir)
	}
}
