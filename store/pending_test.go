package store

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestPendingAfterPolicyLookupFailure: a fresh result whose _mta-sts or
// _smtp._tls lookup failed is scanned again on the next run (docs/verdicts.md),
// while a fresh result without such a failure is reused.
func TestPendingAfterPolicyLookupFailure(t *testing.T) {
	eachStore(t, func(t *testing.T, _ context.Context, _ backend, s *Store) {
		run := mustBegin(t, s, "in")
		mustAdd(t, s, run.ID,
			Recipient{ID: "1", Domain: "sts.example"}, Recipient{ID: "2", Domain: "rpt.example"},
			Recipient{ID: "3", Domain: "fine.example"})
		for d, flag := range map[string]string{
			"sts.example":  result.FlagSTSLookupFailed,
			"rpt.example":  result.FlagTLSRPTLookupFail,
			"fine.example": result.FlagNoTLSRPT,
		} {
			r := res(d, result.Verified, t0.Add(-time.Hour), run.ID+1000)
			r.Flags = []string{flag}
			mustSave(t, s, r)
		}
		if got := pending(t, s, run.ID, t0.Add(-2*time.Hour)); !slices.Equal(got, []string{"rpt.example", "sts.example"}) {
			t.Errorf("pending: %v, want the two domains whose policy lookups failed", got)
		}
	})
}
