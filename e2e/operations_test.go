package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// kcat's metadata and `mlog topic describe` agree on every partition's
// leader, replicas and ISR, on a real server; `mlog topic alter-config`
// and `delete-records` work on it, and `mlog cluster describe` names it.
func TestTopicDescribeAgreesWithKcat(t *testing.T) {
	kc := kcat(t)
	s := startServer(t, nil, "--data-dir", t.TempDir())
	mlog := bin(t, "mlog")
	run(t, "", mlog, "topic", "create", "--addrs", s.addr, "--topic", "ops", "--partitions", "3")
	run(t, "a\nb\nc\nd\ne\nf\n", kc, "-b", s.addr, "-P", "-t", "ops", "-p", "0")
	meta := run(t, "", kc, "-b", s.addr, "-L", "-t", "ops")
	desc := run(t, "", mlog, "topic", "describe", "--addrs", s.addr, "--topic", "ops")
	kcatPart := regexp.MustCompile(`partition (\d+), leader (\d+), replicas: ([\d,]+), isrs: ([\d,]+)`)
	found := kcatPart.FindAllStringSubmatch(meta, -1)
	if len(found) != 3 {
		t.Fatalf("kcat -L lists %d partitions of ops:\n%s", len(found), meta)
	}
	for _, m := range found {
		want := "partition=" + m[1] + " leader=" + m[2] + " "
		line := ""
		for _, l := range strings.Split(desc, "\n") {
			if strings.Contains(l, want) {
				line = l
			}
		}
		if line == "" || !strings.Contains(line, " replicas="+m[3]+" ") || !strings.Contains(line, " isr="+m[4]+" ") {
			t.Errorf("kcat says partition %s leader %s replicas %s isr %s; mlog topic describe says %q", m[1], m[2], m[3], m[4], line)
		}
	}
	if !strings.Contains(desc, "partition=0 ") || !strings.Contains(desc, " end=6 ") {
		t.Errorf("describe lacks partition 0's end offset 6:\n%s", desc)
	}
	run(t, "", mlog, "topic", "alter-config", "--addrs", s.addr, "--topic", "ops", "--set", "retention.ms=7200000")
	if out := run(t, "", mlog, "topic", "describe", "--addrs", s.addr, "--topic", "ops"); !strings.Contains(out, "retention.ms=7200000 (topic)") {
		t.Errorf("describe after alter-config:\n%s", out)
	}
	if out := run(t, "", mlog, "topic", "delete-records", "--addrs", s.addr, "--topic", "ops", "--partition", "0", "--before", "2"); !strings.Contains(out, "ops-0 now starts at 2") {
		t.Errorf("delete-records: %s", out)
	}
	if got := run(t, "", kc, "-b", s.addr, "-C", "-t", "ops", "-p", "0", "-o", "beginning", "-e", "-q"); got != "c\nd\ne\nf\n" {
		t.Errorf("kcat from the beginning after delete-records read %q, want c d e f", got)
	}
	if out := run(t, "", mlog, "cluster", "describe", "--addrs", s.addr); !strings.Contains(out, "brokers=1") || !strings.Contains(out, "controller=node-1") {
		t.Errorf("cluster describe:\n%s", out)
	}
}
