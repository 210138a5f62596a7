package rest_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/mlog/mlog/internal/testutil"
	"github.com/mlog/mlog/rest"
)

// chromium returns the headless browser, or skips (fails under CI, which
// installs it).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not installed: .ci/run should have installed it (apt-get install chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium); CI runs this test")
	return ""
}

// browse runs headless Chromium on url with extra flags and returns its
// standard output.
func browse(t *testing.T, bin, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=10000"}, flags...)
	out, err := exec.CommandContext(ctx, bin, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// The console in a real browser against a three-node cluster: it renders
// the brokers and the controller, a topic with its partitions' ISR and
// high watermarks, and a group's lag. MLOG_CONSOLE_SCREENSHOT=path also
// saves a screenshot (docs/console.png).
func TestConsoleInBrowser(t *testing.T) {
	bin := chromium(t)
	c := cluster(t, 3)
	for i := range 4 {
		if st, raw := call(t, "POST", url(c, 0, "/topics/orders/partitions/0"), rest.ContentTypeJSON, []byte(`{"records":[{"value":{"n":`+string(rune('0'+i))+`}}]}`), nil); st != 200 {
			t.Fatalf("produce: %d %s", st, raw)
		}
	}
	offsets := kadm.Offsets{}
	offsets.AddOffset("orders", 0, 1, -1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	testutil.Eventually(t, "a group commit", func() bool {
		res, err := c.Admin().CommitOffsets(ctx, "billing", offsets)
		return err == nil && res.Ok()
	})
	dom := browse(t, bin, url(c, 1, "/"), "--dump-dom")
	for _, want := range []string{
		`<td>orders</td>`,            // the topic
		`<td class="isr">1,2,3</td>`, // its ISR
		`<td class="num hw">4</td>`,  // partition 0's high watermark
		`<tr data-group="billing">`,  // the group
		`<td class="num lag">3</td>`, // its lag: 4 - 1
		`<td>controller</td>`,        // a controller among the brokers
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the console lacks %s; DOM:\n%s", want, dom)
		}
	}
	if path := os.Getenv("MLOG_CONSOLE_SCREENSHOT"); path != "" {
		abs, _ := filepath.Abs(path)
		browse(t, bin, url(c, 1, "/"), "--screenshot="+abs, "--window-size=1280,1100", "--hide-scrollbars")
		if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot at %s: %v", abs, err)
		}
	}
}
