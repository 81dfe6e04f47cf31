package scantest

import (
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Close waits for every goroutine the world started, even with clients
// still connected (not parallel: it inspects every goroutine).
func TestCloseLeaksNothing(t *testing.T) {
	b := NewBuilder(nil)
	ip := b.Host("mx.example.test", SMTPHost{})
	silent := b.Host("silent.example.test", SMTPHost{Silent: true})
	sts := b.MTASTS("example.test", HTTPSHost{Body: "x"}, "1")
	n := startUnclosed(t, b)
	// Traffic of every kind, and connections left open.
	mustQuery(t, n, "mx.example.test", dns.TypeA, QueryOptions{})
	mustQuery(t, n, "mx.example.test", dns.TypeA, QueryOptions{Net: "tcp"})
	c := dialSMTP(t, n, ip)
	c.banner()
	c.expect(250, "EHLO scanner.test")
	c.expect(220, "STARTTLS")
	if _, err := c.StartTLS("mx.example.test"); err != nil {
		t.Fatal(err)
	}
	dialSMTP(t, n, silent)
	hc := HTTPClient(n, map[string]netip.Addr{"mta-sts.example.test": sts})
	hc.Transport.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	resp, err := hc.Get("https://mta-sts.example.test" + PolicyPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	start := time.Now()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	// No server goroutine may survive Close (client goroutines may). A
	// connection goroutine of net/http can still be returning from its last
	// state hook when Close returns: give such stragglers a moment.
	var alive []string
	for deadline := time.Now().Add(2 * time.Second); ; {
		alive = serverGoroutines()
		if len(alive) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, g := range alive {
		t.Errorf("server goroutine alive after Close:\n%s", g)
	}
}

// serverGoroutines returns the stacks of goroutines of the world's servers.
func serverGoroutines() []string {
	var alive []string
	buf := make([]byte, 1<<20)
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		for _, server := range []string{
			"scantest.(*smtpServer)", "scantest.(*smtpSession)", "scantest.(*httpsServer)",
			"scantest.(*dnsServer)", "miekg/dns.(*Server)", "net/http.(*conn).serve", "net/http.(*Server).Serve",
		} {
			if strings.Contains(g, server) {
				alive = append(alive, g)
				break
			}
		}
	}
	return alive
}
