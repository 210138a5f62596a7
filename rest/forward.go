package rest

// Forwarding: a consumer instance is a group member held by the node that
// made it, but any node answers requests for it. A node that does not hold
// the instance sends the request on to the node that does (asking every
// other live node, from Config.Peers) and
// copies the answer back: no redirect reaches the client. Peers are asked
// at once, so one that does not answer delays nobody. The forwarded
// request carries the client's basic credentials as they came, or, for a
// principal the proxy identified itself, HeaderPrincipal over a connection
// showing this broker's certificate, so the holder checks the same owner
// and ACLs. It is marked HeaderForwarded and never forwarded again.

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
)

// forwardedHeaders are the client's headers a forwarded request keeps.
var forwardedHeaders = []string{"Content-Type", "Accept", "Authorization"}

// peers are the other live nodes' HTTP base URLs (none without
// Config.Peers).
func (p *Proxy) peerURLs() []string {
	if p.cfg.Peers == nil {
		return nil
	}
	return p.cfg.Peers()
}

// send makes the request r stands for on peer, as id.
func (p *Proxy) send(ctx context.Context, r *http.Request, id *identity, peer, method, uri string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, peer+uri, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range forwardedHeaders {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	req.Header.Set(HeaderForwarded, "1")
	if id.check != nil {
		req.Header.Set(HeaderPrincipal, id.principal)
		req.Header.Set(HeaderHost, id.host)
	}
	return p.peers.Do(req)
}

// notHeld reports whether a peer's answer is "no such instance", reading
// the (small) body of a 404 to tell.
func notHeld(resp *http.Response) (bool, []byte) {
	if resp.StatusCode != http.StatusNotFound {
		return false, nil
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e apiError
	return json.Unmarshal(raw, &e) == nil && e.Code == errInstanceNotFound.Code, raw
}

// peerAnswer is one peer's answer to a forwarded request: the response (its
// 404 body already read into read) unless the peer failed or does not hold
// the instance.
type peerAnswer struct {
	peer string
	resp *http.Response
	read []byte
}

// ask sends the request to every peer at once and returns the first answer
// from one that holds the instance (nil: none does). Only the holder acts
// on it; the others answer 404 at once, and a peer that does not answer
// holds nobody up. The caller closes the answer's body, then cancels ctx;
// the other answers are closed in the background.
func (p *Proxy) ask(ctx context.Context, r *http.Request, id *identity, peers []string, method, uri string, body []byte) *peerAnswer {
	answers := make(chan *peerAnswer, len(peers))
	for _, peer := range peers {
		go func() {
			resp, err := p.send(ctx, r, id, peer, method, uri, body)
			if err != nil {
				p.cfg.Logger.Debug("rest: forwarding to a peer failed", "peer", peer, "err", err)
				answers <- nil
				return
			}
			if missing, read := notHeld(resp); missing {
				resp.Body.Close()
				answers <- nil
			} else {
				answers <- &peerAnswer{peer: peer, resp: resp, read: read}
			}
		}()
	}
	for i := range peers {
		if a := <-answers; a != nil {
			go func() { // the rest, closed as they come
				for range len(peers) - i - 1 {
					if other := <-answers; other != nil {
						other.resp.Body.Close()
					}
				}
			}()
			return a
		}
	}
	return nil
}

// forward serves the request from the peer holding instance key; false
// when none does.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, id *identity) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, p.cfg.MaxBodyBytes))
	if err != nil {
		writeError(w, errorf(http.StatusRequestEntityTooLarge, 413, "request body over %d bytes", p.cfg.MaxBodyBytes))
		return true
	}
	// A long poll may take up to Timeout on the peer.
	ctx, cancel := context.WithTimeout(r.Context(), 2*p.cfg.Timeout)
	defer cancel()
	a := p.ask(ctx, r, id, p.peerURLs(), r.Method, r.URL.RequestURI(), body)
	if a == nil {
		return false
	}
	defer a.resp.Body.Close()
	for _, h := range []string{"Content-Type", "Location"} {
		if v := a.resp.Header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	w.WriteHeader(a.resp.StatusCode)
	_, _ = w.Write(a.read)
	_, _ = io.Copy(w, a.resp.Body)
	return true
}

// heldByPeer reports whether another node holds instance name of group
// for this request's user (a new instance may not take its name).
func (p *Proxy) heldByPeer(r *http.Request, id *identity, group, name string) bool {
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.Timeout)
	defer cancel()
	uri := "/consumers/" + url.PathEscape(group) + "/instances/" + url.PathEscape(name) + "/subscription"
	a := p.ask(ctx, r, id, p.peerURLs(), http.MethodGet, uri, nil)
	if a == nil {
		return false
	}
	a.resp.Body.Close()
	return a.resp.StatusCode == http.StatusOK
}
