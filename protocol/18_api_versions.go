package protocol

// ApiVersions v0-v3. The answer is built from the handler registry, so only
// what is implemented is advertised. A version we do not know is answered
// in v0 with UNSUPPORTED_VERSION and the ranges (see conn.dispatch).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(apiVersionsKey, 0, 3, handleApiVersions) }

func apiKeys() []kmsg.ApiVersionsResponseApiKey {
	var keys []kmsg.ApiVersionsResponseApiKey
	for _, h := range supported() {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: h.key, MinVersion: h.min, MaxVersion: h.max})
	}
	return keys
}

func handleApiVersions(_ *conn, kreq kmsg.Request) (reply, error) {
	req := kreq.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = apiKeys()
	return reply{resp: resp}, nil
}

func unsupportedApiVersions() []byte {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiKeys()
	return resp.AppendTo(nil)
}
