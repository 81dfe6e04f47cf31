package scanner_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
)

// TestRunQueueAtSharedIP: the customers of a shared hosting IP wait for
// their turn, one connection at a time, without holding Run's slots: the
// other domains go through meanwhile.
func TestRunQueueAtSharedIP(t *testing.T) {
	t.Parallel()
	b := scantest.NewBuilder(nil)
	certs := map[string]scantest.CertKind{}
	ip := b.Host("smtp1.sharedhost.test", scantest.SMTPHost{SNICerts: certs, BannerDelay: 300 * time.Millisecond})
	var shared, quick []string
	for _, c := range []string{"a", "b", "c"} {
		d := c + ".test"
		certs["mx."+d] = scantest.CertValid
		b.A("mx."+d, ip)
		b.MX(d, "mx."+d)
		shared = append(shared, d)
	}
	for i := range 10 {
		d := fmt.Sprintf("quick%d.test", i)
		b.MailDomain(d, scantest.SMTPHost{})
		quick = append(quick, d)
	}
	l := newLab(t, b, func(c *scanner.Config) { c.Concurrency = 2 })

	in := make(chan string)
	go func() {
		defer close(in)
		for _, d := range append(shared, quick...) {
			in <- d
		}
	}()
	var mu sync.Mutex
	done := map[string]time.Time{}
	l.sc.Run(context.Background(), in, func(r result.Result) {
		mu.Lock()
		done[r.Domain] = time.Now()
		mu.Unlock()
		if r.Verdict != result.Verified {
			t.Errorf("%s: %s (%s)", r.Domain, r.Verdict, r.Reason)
		}
	})
	if len(done) != len(shared)+len(quick) {
		t.Fatalf("%d results", len(done))
	}
	var sharedDone []time.Time
	for _, d := range shared {
		sharedDone = append(sharedDone, done[d])
	}
	slices.SortFunc(sharedDone, time.Time.Compare)
	secondShared := sharedDone[1]
	for _, d := range quick {
		if done[d].After(secondShared) {
			t.Errorf("%s finished after two of the shared IP's customers: it waited for a slot they held", d)
		}
	}
	if c := l.world.Counters(); c.MaxConcurrentPerIP[ip] != 1 || c.ConnsPerIP[ip] < 3 {
		t.Errorf("shared IP: %d connections, at most %d at a time", c.ConnsPerIP[ip], c.MaxConcurrentPerIP[ip])
	}
}
