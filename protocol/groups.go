package protocol

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupHandler passes a consumer-group request to the coordinator (package
// group, a file per API key) on its own goroutine: a JoinGroup waits for the
// rebalance. Only the broker leading the group's __consumer_offsets partition
// coordinates it; elsewhere NOT_COORDINATOR sends clients to look again.
func groupHandler(c *conn, req kmsg.Request) (reply, error) {
	clientID := c.clientID
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	return reply{later: func(ctx context.Context) kmsg.Response {
		return c.s.backend.Group(ctx, clientID, "/"+host, req)
	}}, nil
}
