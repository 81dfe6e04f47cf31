//go:build linux

package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// Checks of the probed addresses behind a lab domain's verdict (the check
// field of interopCase): each returns the problems it finds, worded for a
// failure message.

// probedAddrs lists the addresses of r's MX hosts that were probed.
func probedAddrs(r result.Result) []result.Addr {
	var out []result.Addr
	for _, h := range r.MX {
		for _, a := range h.Addrs {
			if a.Probe != nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// addrSummary is one line per probed address for failure messages: IP,
// SNI, status, EHLO code, TLS version, suite and stack, leaf names, flags.
func addrSummary(r result.Result) string {
	var parts []string
	for _, a := range probedAddrs(r) {
		p := a.Probe
		s := fmt.Sprintf("%s sni=%s status=%s banner=%d ehlo=%d attempts=%d", a.IP, p.SNI, p.Status, p.BannerCode, p.EHLOCode, p.Attempts)
		if t := p.TLS; t != nil {
			stack := t.Stack
			if stack == "" {
				stack = "crypto/tls"
			}
			s += fmt.Sprintf(" %s %s (%s)", t.Version, t.CipherSuite, stack)
			if len(t.Certs) > 0 {
				s += fmt.Sprintf(" leaf=%v", t.Certs[0].DNSNames)
			}
		}
		if p.Error != "" {
			s += fmt.Sprintf(" error=%q", p.Error)
		}
		s += fmt.Sprintf(" flags=%v", a.Flags)
		parts = append(parts, "["+s+"]")
	}
	if len(parts) == 0 {
		return "none probed"
	}
	return strings.Join(parts, " ")
}

// withTLS calls f for each probed address that completed a handshake, and
// says so when none did.
func withTLS(r result.Result, f func(a result.Addr, t *result.TLSInfo) []string) []string {
	var problems []string
	n := 0
	for _, a := range probedAddrs(r) {
		if a.Probe.TLS == nil {
			continue
		}
		n++
		problems = append(problems, f(a, a.Probe.TLS)...)
	}
	if n == 0 {
		problems = append(problems, "no probed address completed a TLS handshake")
	}
	return problems
}

// checkLeafNames: every completed handshake presented a leaf naming exactly
// name (the certificate the server chose for this host's own SNI).
func checkLeafNames(name string) func(result.Result) []string {
	return func(r result.Result) []string {
		return withTLS(r, func(a result.Addr, t *result.TLSInfo) []string {
			if len(t.Certs) == 0 || !slices.Equal(t.Certs[0].DNSNames, []string{name}) {
				var got []string
				if len(t.Certs) > 0 {
					got = t.Certs[0].DNSNames
				}
				return []string{fmt.Sprintf("%s (SNI %q) presented a leaf for %v, want the certificate for %s", a.IP, a.Probe.SNI, got, name)}
			}
			return nil
		})
	}
}

// checkSharedSNI checks the domains whose MX names share one IP that picks
// its certificate by SNI: each name got a probe of its own, sent with its
// own name, and every probe after the IP's first carries sni-per-name. The
// scanner shares the first probe of an IP with later names unless a second
// name's handshake shows another certificate, so the first name probed
// (whichever domain's lookups finished first: the order varies from run to
// run) has no reason to carry the flag; every later name must.
func checkSharedSNI(got map[string]result.Result, domains ...string) []string {
	type named struct {
		domain, mx string
		addr       result.Addr
	}
	var probes []named
	var problems []string
	for _, d := range domains {
		r, ok := got[d]
		if !ok {
			continue // reported as "no result from lookup"
		}
		if len(r.MX) != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d MX hosts, want 1 (shared SNI IP)", d, len(r.MX)))
			continue
		}
		addrs := probedAddrs(r)
		if len(addrs) != 1 {
			problems = append(problems, fmt.Sprintf("%s: %d probed addresses, want 1 (shared SNI IP): %s", d, len(addrs), addrSummary(r)))
			continue
		}
		probes = append(probes, named{d, r.MX[0].Name, addrs[0]})
	}
	if len(probes) < 2 {
		return problems
	}
	slices.SortFunc(probes, func(a, b named) int { return a.addr.Probe.StartedAt.Compare(b.addr.Probe.StartedAt) })
	first := probes[0]
	for i, p := range probes {
		if p.addr.IP != first.addr.IP {
			problems = append(problems, fmt.Sprintf("%s: probed %s, want the shared IP %s", p.domain, p.addr.IP, first.addr.IP))
		}
		if p.addr.Probe.SNI != p.mx {
			problems = append(problems, fmt.Sprintf("%s: judged on a probe sent with SNI %q, want its own MX name %s", p.domain, p.addr.Probe.SNI, p.mx))
		}
		if i > 0 && !slices.Contains(p.addr.Flags, result.FlagSNIPerName) {
			problems = append(problems, fmt.Sprintf("%s: address %s (probe %d of the shared IP, after %s for %s) lacks flag %s (has %v; domain flags %v)",
				p.domain, p.addr.IP, i+1, first.mx, first.domain, result.FlagSNIPerName, p.addr.Flags, got[p.domain].Flags))
		}
	}
	return problems
}

// checkCipher: every completed handshake's suite contains want (when set)
// and not notWant (when set); "DHE" matches ECDHE too.
func checkCipher(want, notWant string) func(result.Result) []string {
	return func(r result.Result) []string {
		return withTLS(r, func(a result.Addr, t *result.TLSInfo) []string {
			var problems []string
			if want != "" && !strings.Contains(t.CipherSuite, want) {
				problems = append(problems, fmt.Sprintf("%s negotiated %s, want a %s suite", a.IP, t.CipherSuite, want))
			}
			if notWant != "" && strings.Contains(t.CipherSuite, notWant) {
				problems = append(problems, fmt.Sprintf("%s negotiated %s, the server offers no %s suite", a.IP, t.CipherSuite, notWant))
			}
			return problems
		})
	}
}

// checkVersion: every completed handshake used version (e.g. "TLS 1.3").
func checkVersion(version string) func(result.Result) []string {
	return func(r result.Result) []string {
		return withTLS(r, func(a result.Addr, t *result.TLSInfo) []string {
			if t.Version != version {
				return []string{fmt.Sprintf("%s negotiated %s, want %s", a.IP, t.Version, version)}
			}
			return nil
		})
	}
}

// checkEHLOCode: every probed address got code in reply to EHLO.
func checkEHLOCode(code int) func(result.Result) []string {
	return func(r result.Result) []string {
		var problems []string
		addrs := probedAddrs(r)
		if len(addrs) == 0 {
			return []string{fmt.Sprintf("no probed address (want EHLO reply %d)", code)}
		}
		for _, a := range addrs {
			if a.Probe.EHLOCode != code {
				problems = append(problems, fmt.Sprintf("%s: EHLO reply %d, want %d", a.IP, a.Probe.EHLOCode, code))
			}
		}
		return problems
	}
}

// checkPostscreen reads the lab Postfix's log: the postscreen listener must
// have run its pregreet test on the scanner and passed it ("PASS NEW"),
// never seen it talk before the end of the multi-line greeting ("PREGREET").
// Without this, a postscreen that skipped the test (an access list, a
// cached pass) would make the postscreen case prove nothing.
func (l *interopLab) checkPostscreen() {
	l.t.Helper()
	if l.postfix == nil {
		return
	}
	l.postfix.mu.Lock()
	lines := slices.Clone(l.postfix.lines)
	l.postfix.mu.Unlock()
	var pass, pregreet []string
	for _, line := range lines {
		if !strings.Contains(line, "postfix/postscreen/postscreen") {
			continue
		}
		switch {
		case strings.Contains(line, "PREGREET"):
			pregreet = append(pregreet, line)
		case strings.Contains(line, "PASS NEW"):
			pass = append(pass, line)
		}
	}
	if len(pregreet) > 0 {
		l.t.Errorf("postscreen.interop.test: the scanner spoke before the end of the multi-line greeting:\n%s", strings.Join(pregreet, "\n"))
	}
	if len(pass) == 0 {
		l.t.Errorf("postscreen.interop.test: no \"PASS NEW\" in the Postfix log: the pregreet test did not run to its end (lab or scanner problem)")
	}
}

// starttls talks to the lab Postfix at ip:25 as a minimal client (banner,
// EHLO, STARTTLS) and returns the handshake's error under cfg: a check of the
// lab itself, so that a listener that does not restrict what it says it
// restricts cannot make a case pass vacuously.
func (l *interopLab) starttls(ip string, cfg *tls.Config) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, "25"), 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	br := bufio.NewReader(c)
	reply := func() (string, error) {
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(line), nil
			}
		}
	}
	for _, cmd := range []string{"", "EHLO " + l.HELO, "STARTTLS"} {
		if cmd != "" {
			if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
				return err
			}
		}
		line, err := reply()
		if err != nil {
			return fmt.Errorf("after %q: %w", cmd, err)
		}
		if !strings.HasPrefix(line, "2") {
			return fmt.Errorf("after %q: %s", cmd, line)
		}
	}
	tc := tls.Client(c, cfg)
	defer tc.Close()
	return tc.Handshake()
}

// checkListeners checks, after the scan, that the listeners restrict what
// their cases rely on.
func (l *interopLab) checkListeners() {
	l.t.Helper()
	// tls13: TLS 1.2 must fail (the case passes on TLS 1.3 either way).
	err := l.starttls(l.Net+".23", &tls.Config{ServerName: "mx.tls13.interop.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err == nil {
		l.t.Errorf("lab self-check: the TLS 1.3-only listener %s.23 completed a TLS 1.2 handshake", l.Net)
	}
	// rsa-kx: an ECDHE-only TLS 1.2 client must fail.
	var ecdhe []uint16
	for _, cs := range tls.CipherSuites() {
		if strings.Contains(cs.Name, "ECDHE") {
			ecdhe = append(ecdhe, cs.ID)
		}
	}
	err = l.starttls(l.Net+".22", &tls.Config{ServerName: "mx.rsa-kx.interop.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12, CipherSuites: ecdhe})
	if err == nil {
		l.t.Errorf("lab self-check: the RSA-key-exchange-only listener %s.22 completed an ECDHE handshake", l.Net)
	}
}
