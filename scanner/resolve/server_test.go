package resolve

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startServer runs h on 127.0.0.1 over UDP and TCP on the same port and
// returns "127.0.0.1:port". The servers stop at the end of the test.
func startServer(tb testing.TB, h dns.Handler) string {
	tb.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		if err != nil {
			pc.Close() // TCP port taken: try another
			continue
		}
		started := make(chan struct{}, 2)
		notify := func() { started <- struct{}{} }
		udp := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
		tcp := &dns.Server{Listener: l, Handler: h, NotifyStartedFunc: notify}
		errc := make(chan error, 2)
		go func() { errc <- udp.ActivateAndServe() }()
		go func() { errc <- tcp.ActivateAndServe() }()
		for range 2 {
			select {
			case <-started:
			case err := <-errc:
				tb.Fatalf("dns server: %v", err)
			}
		}
		tb.Cleanup(func() {
			_ = udp.Shutdown()
			_ = tcp.Shutdown()
			for range 2 {
				if err := <-errc; err != nil {
					tb.Errorf("dns server: %v", err)
				}
			}
		})
		return addr
	}
	tb.Fatal("no free port for UDP and TCP")
	return ""
}

// zone is a tiny recursive resolver over zone-file records: it follows
// CNAMEs inside the zone like a real recursive resolver does.
type zone struct {
	rrs map[string][]dns.RR // lower-case owner -> records

	// AD sets the AD bit on replies, except for names in insecure.
	AD       bool
	insecure map[string]bool
	// StopAtCNAME answers with the first CNAME only, as if the resolver
	// could not follow it.
	StopAtCNAME bool
	// Override, when it returns true, has answered the query itself.
	Override func(w dns.ResponseWriter, r *dns.Msg) bool

	mu   sync.Mutex
	seen []query
	hook func(q query) // called for every query received
}

// query is one query the server received.
type query struct {
	Name  string
	Type  uint16
	Net   string // "udp" or "tcp"
	RD    bool
	DO    bool
	Size  uint16
	HasOP bool
}

func newZone(tb testing.TB, records ...string) *zone {
	tb.Helper()
	z := &zone{rrs: map[string][]dns.RR{}, insecure: map[string]bool{}}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			tb.Fatalf("record %q: %v", s, err)
		}
		k := strings.ToLower(rr.Header().Name)
		z.rrs[k] = append(z.rrs[k], rr)
	}
	return z
}

func (z *zone) queries() []query {
	z.mu.Lock()
	defer z.mu.Unlock()
	return append([]query(nil), z.seen...)
}

// count returns how many queries for name (any type, any net) arrived.
func (z *zone) count(name string) int {
	n := 0
	for _, q := range z.queries() {
		if strings.EqualFold(q.Name, dns.Fqdn(name)) {
			n++
		}
	}
	return n
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	q := query{Net: w.LocalAddr().Network(), RD: r.RecursionDesired}
	if len(r.Question) == 1 {
		q.Name, q.Type = r.Question[0].Name, r.Question[0].Qtype
	}
	if opt := r.IsEdns0(); opt != nil {
		q.HasOP, q.DO, q.Size = true, opt.Do(), opt.UDPSize()
	}
	z.mu.Lock()
	z.seen = append(z.seen, q)
	hook := z.hook
	z.mu.Unlock()
	if hook != nil {
		hook(q)
	}
	if z.Override != nil && z.Override(w, r) {
		return
	}
	_ = w.WriteMsg(z.reply(r))
}

// reply builds the answer to r from the zone.
func (z *zone) reply(r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	name, qtype := strings.ToLower(r.Question[0].Name), r.Question[0].Qtype
	m.AuthenticatedData = z.AD && !z.isInsecure(name)
	for range 16 {
		rrs, ok := z.rrs[name]
		if !ok {
			m.Rcode = dns.RcodeNameError
			return m
		}
		var cname *dns.CNAME
		found := false
		for _, rr := range rrs {
			if rr.Header().Rrtype == qtype {
				m.Answer = append(m.Answer, dns.Copy(rr))
				found = true
			}
			if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if found || cname == nil {
			return m
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		name = strings.ToLower(cname.Target)
		if z.isInsecure(name) {
			m.AuthenticatedData = false
		}
		if z.StopAtCNAME {
			return m
		}
	}
	return m // a loop: the chain so far
}

func (z *zone) isInsecure(name string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.insecure[name]
}

// setInsecure marks name's answers as lacking the AD bit.
func (z *zone) setInsecure(name string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.insecure[name] = true
}

// setHook sets the function called for every query received.
func (z *zone) setHook(f func(query)) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.hook = f
}

// rcodeReply answers r with rcode.
func rcodeReply(w dns.ResponseWriter, r *dns.Msg, rcode int) {
	m := new(dns.Msg)
	m.SetRcode(r, rcode)
	_ = w.WriteMsg(m)
}

func mustNew(tb testing.TB, cfg Config) *Client {
	tb.Helper()
	c, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// fastConfig is a Config for addr; tests that expect drops shorten Timeout.
func fastConfig(addr string) Config {
	return Config{Servers: []string{addr}, Timeout: time.Second, Attempts: 3}
}

func qstring(q query) string {
	return fmt.Sprintf("%s %s %s", q.Net, q.Name, dns.TypeToString[q.Type])
}
