package resolve

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// TestUDPSocketReuse: sequential queries reuse a pooled socket (bounded),
// instead of one socket per query.
func TestUDPSocketReuse(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ports := map[string]int{}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		ports[w.RemoteAddr().String()]++
		mu.Unlock()
		m := new(dns.Msg)
		m.SetReply(r)
		rr, _ := dns.NewRR(r.Question[0].Name + " 60 IN A 192.0.2.1")
		m.Answer = append(m.Answer, rr)
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })

	c, err := New(Config{Servers: []string{pc.LocalAddr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	const n = 3 * maxSocketUses
	for i := range n {
		if a := c.Addrs(context.Background(), "host.test", false); a.Status != StatusOK {
			t.Fatalf("query %d: %s %v", i, a.Status, a.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ports) < n/maxSocketUses || len(ports) > n/maxSocketUses+1 {
		t.Errorf("%d queries came from %d source ports, want about %d (reuse bounded by %d)", n, len(ports), n/maxSocketUses, maxSocketUses)
	}
}
