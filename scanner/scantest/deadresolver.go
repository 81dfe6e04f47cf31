package scantest

import (
	"net"
	"testing"

	"github.com/miekg/dns"
)

// The resolvers a scan must not start behind (tlsready's resolver check):
// each returns a loopback address for the rest of the test.

// SilentResolver is a UDP socket that reads queries and never answers.
func SilentResolver(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// UnboundResolver is a UDP port with nothing listening: a query gets an
// ICMP port unreachable, which the client sees as a refused connection.
func UnboundResolver(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// RefusingResolver answers every query REFUSED, as a resolver whose access
// list leaves us out does.
func RefusingResolver(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeRefused)
			_ = w.WriteMsg(m)
		})}
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		if err := <-errc; err != nil {
			t.Errorf("refusing resolver: %v", err)
		}
	})
	return pc.LocalAddr().String()
}
