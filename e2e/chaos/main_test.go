//go:build linux

package chaos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// mlogBin is the mlog binary every test runs: MLOG_CHAOS_BIN, or
// ./cmd/mlog built once per test binary.
func mlogBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("MLOG_CHAOS_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "mlog-chaos-bin")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "mlog")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/mlog/mlog/cmd/mlog").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mlog: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// envInt reads an integer setting, def when unset.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}
