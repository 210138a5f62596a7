package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/mlog/mlog/internal/testutil"
)

// The REST API of a real `mlog server`: records produced over HTTP are
// read by kcat, and records kcat produces are read by an HTTP consumer
// instance.
func TestRESTWithKcat(t *testing.T) {
	kc := kcat(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s := startServer(t, nil, "--data-dir", t.TempDir(), "--http-addr", httpAddr)
	run(t, "", bin(t, "mlog"), "topic", "create", "--addrs", s.addr, "--topic", "web", "--partitions", "1")
	do := func(method, path, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+httpAddr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		req.Header.Set("Accept", "application/vnd.kafka.json.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if st, body := do("POST", "/topics/web", "application/vnd.kafka.json.v2+json", `{"records":[{"value":{"from":"http"}}]}`); st != 200 {
		t.Fatalf("produce over HTTP: %d %s", st, body)
	}
	if out := run(t, "", kc, "-b", s.addr, "-C", "-t", "web", "-o", "beginning", "-e", "-c", "1", "-f", "%s\n"); out != `{"from":"http"}`+"\n" {
		t.Fatalf("kcat read %q", out)
	}
	run(t, `{"from":"kcat"}`+"\n", kc, "-b", s.addr, "-P", "-t", "web")

	if st, body := do("POST", "/consumers/e2e", "application/vnd.kafka.v2+json", `{"name":"c","format":"json","auto.offset.reset":"earliest"}`); st != 200 {
		t.Fatalf("create consumer: %d %s", st, body)
	}
	if st, body := do("POST", "/consumers/e2e/instances/c/subscription", "application/vnd.kafka.v2+json", `{"topics":["web"]}`); st != 204 {
		t.Fatalf("subscribe: %d %s", st, body)
	}
	var froms []string
	testutil.Eventually(t, "both records over HTTP", func() bool {
		st, body := do("GET", "/consumers/e2e/instances/c/records?timeout=500", "", "")
		if st != 200 {
			t.Fatalf("records: %d %s", st, body)
		}
		var recs []struct {
			Value struct {
				From string `json:"from"`
			} `json:"value"`
		}
		if err := json.Unmarshal([]byte(body), &recs); err != nil {
			t.Fatalf("records body %s: %v", body, err)
		}
		for _, r := range recs {
			froms = append(froms, r.Value.From)
		}
		return len(froms) >= 2
	})
	if strings.Join(froms, ",") != "http,kcat" {
		t.Fatalf("HTTP consumer read %v, want http then kcat", froms)
	}
}
