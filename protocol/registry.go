package protocol

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// reply is what a handler returns: a response ready now, a function that
// produces it later on its own goroutine (waiting for fsync or new data), or
// nothing at all (produce with acks=0).
type reply struct {
	resp  kmsg.Response
	later func(ctx context.Context) kmsg.Response
	fetch func(ctx context.Context) *fetchReply
	none  bool
	// closeAfter closes the connection once this reply is sent (a failed
	// SASL exchange).
	closeAfter bool
}

type handlerFunc func(c *conn, req kmsg.Request) (reply, error)

type handler struct {
	key      int16
	min, max int16
	fn       handlerFunc
}

// handlers is filled by each API's file at init and read-only after.
var handlers = map[int16]handler{}

func register(key, minVersion, maxVersion int16, fn handlerFunc) {
	handlers[key] = handler{key: key, min: minVersion, max: maxVersion, fn: fn}
}

// supported lists the registry in key order, for ApiVersions.
func supported() []handler {
	out := make([]handler, 0, len(handlers))
	for _, h := range handlers {
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b handler) int { return int(a.key) - int(b.key) })
	return out
}
