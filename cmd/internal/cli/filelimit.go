package cli

import (
	"log/slog"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// wantOpenFiles is the open-file limit a server asks for. Every partition
// replica keeps one file open per log segment (indexes are mapped and keep
// none) and every client a socket, so a broker with tens of thousands of
// partitions needs more than the usual hard limit; Kafka's documentation
// asks operators for 100,000 or more.
const wantOpenFiles = 1 << 20

// raiseOpenFileLimit lifts RLIMIT_NOFILE toward wantOpenFiles (within the
// kernel's fs.nr_open). Raising the hard limit needs privilege
// (CAP_SYS_RESOURCE); without it the soft limit is raised to the hard one,
// as the Go runtime already does. It logs the limit the server runs with.
func raiseOpenFileLimit(log *slog.Logger) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("read open-file limit", "err", err)
		return
	}
	want := uint64(wantOpenFiles)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			want = min(want, n)
		}
	}
	if lim.Max < want {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: want, Max: want}); err == nil {
			lim = unix.Rlimit{Cur: want, Max: want}
		}
	}
	if lim.Cur < lim.Max {
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: lim.Max, Max: lim.Max}); err == nil {
			lim.Cur = lim.Max
		}
	}
	log.Info("open-file limit", "limit", lim.Cur)
	if lim.Cur < 30_000 {
		log.Warn("open-file limit is low for many partitions (one file per log segment each): raise it (ulimit -n, LimitNOFILE=) to host more", "limit", lim.Cur)
	}
}
