package resolve

import (
	"context"
	"fmt"

	"github.com/miekg/dns"
)

// Ping asks the resolver for the NS RRset of the root zone and reports
// whether it serves us at all, before a run trusts it with every domain.
//
// The root NS RRset is the one question every recursive resolver can answer
// without depending on any domain of ours: it is the priming query (RFC 8109
// §3), kept in every resolver's cache, and it is never the subject of
// filtering, DNS64 rewriting or split horizons. A lab resolver that knows only
// its own zones answers it too, with SERVFAIL or NXDOMAIN: any reply proves
// that the resolver listens and talks to us, so Ping accepts every rcode but
// REFUSED. What Ping refuses is what would turn every domain of a run into a
// dns-error: no reply after all attempts (ErrTimeout), nothing listening
// (ErrRefused: ICMP port unreachable) or another network error (ErrNetwork),
// and a resolver that refuses to recurse for us (REFUSED; ErrRcode).
//
// The Status is the outcome as data (StatusOK for an answer with NS records,
// StatusServfail for a resolver that cannot reach the root, ...); the error
// is nil exactly when the resolver is usable.
func (c *Client) Ping(ctx context.Context) (Status, error) {
	if c.closed() {
		return StatusError, ErrClosed
	}
	r, err := c.query(ctx, ".", dns.TypeNS)
	if err != nil {
		return errStatus(err), fmt.Errorf("root NS query: %w", err)
	}
	if r.Rcode == dns.RcodeRefused {
		return StatusRefused, fmt.Errorf("%w: REFUSED for the root NS query: the resolver does not recurse for us", ErrRcode)
	}
	st := rcodeStatus(r.Rcode)
	if st == StatusOK && len(r.Answer) == 0 {
		st = StatusNoData
	}
	return st, nil
}
