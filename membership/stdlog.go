package membership

import (
	"context"
	"log/slog"
	"strings"
)

// stdlogWriter lets serf and memberlist, which log through the standard
// log package, write into slog. Their lines look like
// "[WARN] serf: message"; they all go out at debug level (they are
// chatty, and what matters to an operator this package logs itself) with
// the original level kept as an attribute.
type stdlogWriter struct {
	log *slog.Logger
}

func (w stdlogWriter) Write(p []byte) (int, error) {
	if !w.log.Enabled(context.Background(), slog.LevelDebug) {
		return len(p), nil
	}
	line := strings.TrimRight(string(p), "\r\n")
	origin := ""
	if rest, ok := strings.CutPrefix(line, "["); ok {
		if lvl, msg, found := strings.Cut(rest, "]"); found {
			origin, line = lvl, strings.TrimSpace(msg)
		}
	}
	if origin != "" {
		w.log.Debug(line, "origin_level", origin)
	} else {
		w.log.Debug(line)
	}
	return len(p), nil
}
