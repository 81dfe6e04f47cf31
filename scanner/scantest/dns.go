package scantest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEs bounds the CNAME chain the server follows (a loop is SERVFAIL).
const maxCNAMEs = 8

// wrongQuestion is the question name of a FaultWrongQuestion answer.
const wrongQuestion = "wrong-question.invalid."

// zone is the whole DNS of the world, indexed by canonical owner name.
type zone struct {
	names  map[string]*node // every owner name and empty non-terminal
	secure map[string]bool  // canonical secure zone apexes
	faults map[string]DNSFault
}

// node holds the RRsets of one name; empty for an empty non-terminal.
type node struct {
	sets []rrset
}

type rrset struct {
	typ uint16
	rrs []dns.RR
}

func (nd *node) get(t uint16) []dns.RR {
	if nd == nil {
		return nil
	}
	for _, s := range nd.sets {
		if s.typ == t {
			return s.rrs
		}
	}
	return nil
}

func (nd *node) add(rr dns.RR) {
	t := rr.Header().Rrtype
	for i := range nd.sets {
		if nd.sets[i].typ == t {
			nd.sets[i].rrs = append(nd.sets[i].rrs, rr)
			return
		}
	}
	nd.sets = append(nd.sets, rrset{typ: t, rrs: []dns.RR{rr}})
}

// buildZone parses the zone text (in parallel for big zones) and indexes it.
func buildZone(lines []string, secure []string, faults map[string]DNSFault) (*zone, error) {
	rrs := make([]dns.RR, len(lines))
	errs := make([]error, len(lines))
	workers := min(runtime.GOMAXPROCS(0), 1+len(lines)/5000)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(lines); i += workers {
				rrs[i], errs[i] = dns.NewRR(lines[i])
			}
		})
	}
	wg.Wait()
	z := &zone{names: make(map[string]*node, len(lines)), secure: map[string]bool{}, faults: map[string]DNSFault{}}
	for i, rr := range rrs {
		if errs[i] != nil {
			return nil, fmt.Errorf("%w: zone entry %d: %w", ErrScenario, i, errs[i])
		}
		if rr == nil {
			continue
		}
		z.insert(rr)
	}
	for _, s := range secure {
		z.secure[dns.CanonicalName(s)] = true
	}
	for name, f := range faults {
		z.faults[dns.CanonicalName(name)] = f
	}
	return z, nil
}

func (z *zone) insert(rr dns.RR) {
	name := dns.CanonicalName(rr.Header().Name)
	nd := z.names[name]
	if nd == nil {
		nd = &node{}
		z.names[name] = nd
		// Ancestors exist as empty non-terminals (RFC 8020: NXDOMAIN means
		// nothing exists below either).
		for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
			anc := name[off:]
			if _, ok := z.names[anc]; ok {
				break
			}
			z.names[anc] = &node{}
		}
	}
	nd.add(rr)
}

// isSecure reports whether name is at or under a secure zone.
func (z *zone) isSecure(name string) bool {
	if len(z.secure) == 0 {
		return false
	}
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if z.secure[name[off:]] {
			return true
		}
	}
	return z.secure["."]
}

// soa returns the SOA of the closest enclosing name that has one.
func (z *zone) soa(name string) []dns.RR {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		if s := z.names[name[off:]].get(dns.TypeSOA); s != nil {
			return s
		}
	}
	return nil
}

// lookup answers a question like a recursive resolver: the RRset, after
// the CNAME chain inside the zone. It returns the answer section, the rcode
// and every name visited (for the AD bit and faults).
func (z *zone) lookup(qname string, qtype uint16) (answer []dns.RR, rcode int, names []string) {
	name := dns.CanonicalName(qname)
	for range maxCNAMEs + 1 {
		names = append(names, name)
		nd, ok := z.names[name]
		if !ok {
			return answer, dns.RcodeNameError, names
		}
		if qtype == dns.TypeANY {
			for _, s := range nd.sets {
				answer = append(answer, s.rrs...)
			}
			return answer, dns.RcodeSuccess, names
		}
		if s := nd.get(qtype); s != nil {
			return append(answer, s...), dns.RcodeSuccess, names
		}
		cn := nd.get(dns.TypeCNAME)
		if cn == nil {
			return answer, dns.RcodeSuccess, names // NODATA
		}
		answer = append(answer, cn[0])
		name = dns.CanonicalName(cn[0].(*dns.CNAME).Target)
	}
	return nil, dns.RcodeServerFailure, names // CNAME loop or chain too long
}

// dnsServer serves the zone over UDP and TCP on one port of 127.0.0.1.
type dnsServer struct {
	n    *Internet
	z    *zone
	addr string
	udp  *dns.Server
	tcp  *dns.Server
}

func startDNS(n *Internet, z *zone) (*dnsServer, error) {
	s := &dnsServer{n: n, z: z}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 { // the UDP port may be taken for TCP: try another
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("scantest: dns: %w", err)
		}
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("scantest: dns: %w", err)
	}
	// A resolver serving a scanner has a large receive buffer (unbound:
	// so-rcvbuf 4m); with the default one, a burst of a thousand queries
	// overflows it and each dropped query costs its client a timeout. The
	// kernel caps the size at net.core.rmem_max.
	_ = pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	s.addr = pc.LocalAddr().String()
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: notify, ReadTimeout: 10 * time.Second}
	serveErr := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() { serveErr <- srv.ActivateAndServe() }()
	}
	for range 2 {
		select {
		case <-started:
		case err := <-serveErr:
			_ = s.close()
			return nil, fmt.Errorf("scantest: dns: %w", err)
		}
	}
	return s, nil
}

func (s *dnsServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
}

// ServeDNS implements dns.Handler.
func (s *dnsServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	resp := s.answer(req, udp)
	if resp == nil {
		return // dropped (FaultTimeout)
	}
	if !s.n.roundTrip() {
		return
	}
	_ = w.WriteMsg(resp)
}

// answer builds the response to req, or nil to drop the query.
func (s *dnsServer) answer(req *dns.Msg, udp bool) *dns.Msg {
	qtype := "NONE"
	if len(req.Question) == 1 {
		qtype = dns.TypeToString[req.Question[0].Qtype]
		if qtype == "" {
			qtype = "OTHER"
		}
	}
	s.n.stats.dnsQuery(qtype)
	resp := new(dns.Msg)
	if req.Response || req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		resp.SetRcodeFormatError(req)
		if req.Opcode != dns.OpcodeQuery {
			resp.Rcode = dns.RcodeNotImplemented
		}
		return resp
	}
	resp.SetReply(req)
	resp.RecursionAvailable = true
	q := req.Question[0]
	opt := req.IsEdns0()
	do := opt != nil && opt.Do()

	var names []string
	resp.Answer, resp.Rcode, names = s.z.lookup(q.Name, q.Qtype)

	for _, name := range names {
		switch s.z.faults[name] {
		case FaultServfail:
			resp.Answer, resp.Rcode = nil, dns.RcodeServerFailure
		case FaultRefused:
			resp.Answer, resp.Rcode = nil, dns.RcodeRefused
		case FaultTimeout:
			return nil
		case FaultTruncate:
			if udp {
				resp.Answer, resp.Truncated = nil, true
			}
		case FaultWrongID:
			resp.Id = req.Id + 1
		case FaultWrongQuestion:
			resp.Question = []dns.Question{{Name: wrongQuestion, Qtype: q.Qtype, Qclass: q.Qclass}}
		}
	}
	if resp.Rcode == dns.RcodeSuccess || resp.Rcode == dns.RcodeNameError {
		if len(resp.Answer) == 0 && !resp.Truncated {
			resp.Ns = s.z.soa(names[len(names)-1])
		}
		// A validating resolver sets AD when every RRset (or the denial) is
		// secure and the client asked for DNSSEC (RFC 4035 §3.2.3, RFC 6840 §5.7).
		if do || req.AuthenticatedData {
			resp.AuthenticatedData = true
			for _, name := range names {
				if !s.z.isSecure(name) {
					resp.AuthenticatedData = false
					break
				}
			}
		}
	}
	if opt != nil {
		resp.SetEdns0(1232, do)
	}
	if udp {
		// RFC 6891 §6.2.5 / RFC 1035 §4.2.1: fit the client's payload size.
		size := dns.MinMsgSize
		if opt != nil {
			size = max(size, int(opt.UDPSize()))
		}
		resp.Truncate(size)
	} else {
		resp.Compress = true
	}
	return resp
}

// canonical lower-cases a name and makes it absolute.
func canonical(name string) string { return dns.CanonicalName(strings.TrimSpace(name)) }
