package resolve

import (
	"errors"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/tlsready/tlsready/scanner/scantest"
)

// TestPing: the root NS question tells a resolver that serves us (any
// reply, even SERVFAIL from a lab resolver without a way to the root) from
// one that does not (silent, nothing listening, REFUSED).
func TestPing(t *testing.T) {
	t.Parallel()
	rcodeServer := func(rcode int) string {
		z := newZone(t)
		z.Override = func(w dns.ResponseWriter, r *dns.Msg) bool { rcodeReply(w, r, rcode); return true }
		return startServer(t, z)
	}
	for _, tc := range []struct {
		name    string
		addr    string
		status  Status
		wantErr error // nil: usable
	}{
		{"root NS", startServer(t, newZone(t, ". 518400 IN NS a.root-servers.net.")), StatusOK, nil},
		{"nodata", startServer(t, newZone(t, ". 86400 IN SOA a.root-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400")), StatusNoData, nil},
		{"nxdomain", startServer(t, newZone(t)), StatusNXDomain, nil},
		{"servfail", rcodeServer(dns.RcodeServerFailure), StatusServfail, nil},
		{"refused rcode", rcodeServer(dns.RcodeRefused), StatusRefused, ErrRcode},
		{"silent", scantest.SilentResolver(t), StatusTimeout, ErrTimeout},
		{"nothing listening", scantest.UnboundResolver(t), StatusError, ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := fastConfig(tc.addr)
			cfg.Timeout = 100 * time.Millisecond
			c := mustNew(t, cfg)
			st, err := c.Ping(t.Context())
			if st != tc.status {
				t.Errorf("status %q, want %q", st, tc.status)
			}
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("err %v, want nil", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Errorf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}
