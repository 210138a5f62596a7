package protocol

import (
	"context"
	"net"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// groupHandler passes a consumer-group request to the coordinator on its
// own goroutine: a JoinGroup waits for the rebalance.
func groupHandler(c *conn, req kmsg.Request) (reply, error) {
	clientID := c.clientID
	host, _, _ := net.SplitHostPort(c.nc.RemoteAddr().String())
	return reply{later: func(ctx context.Context) kmsg.Response {
		return c.s.backend.Group(ctx, clientID, "/"+host, req)
	}}, nil
}
