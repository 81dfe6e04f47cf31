package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

// hostResolver is what defaultHELO needs from the system resolver
// (/etc/hosts, then DNS); *net.Resolver has it.
type hostResolver interface {
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// heloLookupTimeout bounds the lookups of defaultHELO: on a host whose DNS is
// broken, the scan's own resolver check says so next.
const heloLookupTimeout = 5 * time.Second

// defaultHELO finds the host's fully qualified domain name for EHLO, as
// `hostname -f` does: the host name itself when it is dotted; else its
// canonical name (an /etc/hosts line "192.0.2.7 scanner.example.org scanner",
// or a CNAME); else a dotted name that an address of the host (not loopback)
// has in reverse DNS, preferring one that starts with the host name. A bare
// name ("vm") is refused: receivers reject or distrust it (RFC 5321 §4.1.1.1:
// EHLO gives the client's fully-qualified domain name), and the report's
// vantage point would not say who scanned.
func defaultHELO(ctx context.Context, hostname func() (string, error), r hostResolver) (string, error) {
	h, err := hostname()
	if err != nil {
		return "", fmt.Errorf("no --helo, and the host name is unknown (%v): pass --helo with the scanning host's fully qualified name, e.g. --helo scanner.example.org", err)
	}
	if name, ok := fqdn(h); ok {
		return name, nil
	}
	ctx, cancel := context.WithTimeout(ctx, heloLookupTimeout)
	defer cancel()
	bare := dnsname.Key(h)
	if cname, err := r.LookupCNAME(ctx, bare); err == nil {
		if name, ok := fqdn(cname); ok {
			return name, nil
		}
	}
	var other string // a dotted reverse name not starting with the host name
	addrs, _ := r.LookupHost(ctx, bare)
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil || ip.IsLoopback() || ip.IsUnspecified() {
			continue
		}
		names, _ := r.LookupAddr(ctx, a)
		for _, n := range names {
			name, ok := fqdn(n)
			switch {
			case !ok:
			case strings.HasPrefix(name, bare+"."):
				return name, nil
			case other == "":
				other = name
			}
		}
	}
	if other != "" {
		return other, nil
	}
	return "", fmt.Errorf("no --helo, and this host's name %q is not fully qualified (no /etc/hosts entry, CNAME or reverse DNS gives a dotted name): "+
		"pass --helo with the scanning host's fully qualified name, e.g. --helo scanner.example.org, "+
		"one whose reverse DNS points back to it and that serves a web page explaining the scan", h)
}

// fqdn normalises s (lower case, no trailing dot) and reports whether it is a
// fully qualified host name: at least two labels of letters, digits and
// hyphens, not an IP address, and not a name of this host only
// (localhost, *.localhost, *.localdomain).
func fqdn(s string) (string, bool) {
	name := dnsname.Key(s)
	if len(name) > 253 || !strings.Contains(name, ".") {
		return name, false
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return name, false
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return name, false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return name, false
			}
		}
	}
	switch tld := labels[len(labels)-1]; {
	case tld == "localhost", tld == "localdomain", strings.Trim(tld, "0123456789") == "":
		return name, false
	}
	return name, true
}
