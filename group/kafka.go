package group

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// call is what a group request carries besides its body.
type call struct {
	partitions           int // of __consumer_offsets
	clientID, clientHost string
}

// shard is the offsets partition of a group.
func (r call) shard(name string) int32 { return PartitionFor(name, r.partitions) }

type handler func(c *Coordinator, ctx context.Context, r call, req kmsg.Request) kmsg.Response

// handlers maps an API key to its request→response mapping; each NN_*.go
// file registers its own at init, and it is read-only after.
var handlers = map[int16]handler{}

// register adds the mapping of one group API, which fills in a response of
// the request's version; the key is its request type's (Key does not read
// its receiver, so a nil Req answers it).
func register[Req kmsg.Request, Resp kmsg.Response](fn func(*Coordinator, context.Context, call, Req, Resp)) {
	var req Req
	handlers[req.Key()] = func(c *Coordinator, ctx context.Context, r call, kreq kmsg.Request) kmsg.Response {
		resp := kreq.ResponseKind()
		fn(c, ctx, r, kreq.(Req), resp.(Resp))
		return resp
	}
}

// Handle answers a group request. partitions is the number of
// __consumer_offsets partitions (a group's shard is PartitionFor(group,
// partitions)). A request of no group API gets an empty response.
func (c *Coordinator) Handle(ctx context.Context, partitions int, clientID, clientHost string, req kmsg.Request) kmsg.Response {
	h, ok := handlers[req.Key()]
	if !ok {
		return req.ResponseKind()
	}
	return h(c, ctx, call{partitions, clientID, clientHost}, req)
}

// codeOf is the Kafka code of an error: its kerr value; REQUEST_TIMED_OUT
// for a deadline; NOT_COORDINATOR otherwise (the partition's log failed or
// moved: clients find the coordinator again).
func codeOf(err error) int16 {
	var ke *kerr.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return ke.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	}
	return kerr.NotCoordinator.Code
}
