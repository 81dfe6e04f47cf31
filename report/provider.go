package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
	"golang.org/x/sync/errgroup"

	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// registrable returns the registrable domain of an MX host name: its
// public suffix under the ICANN section of the Public Suffix List plus one
// label ("mx1.bigmail.test" -> "bigmail.test", "mx.mail.example.co.uk" ->
// "example.co.uk", "aspmx.l.google.com" -> "google.com"). Private-section
// suffixes are not used: a hoster's customer zones ("x.herokuapp.com")
// belong to the hoster, who runs their mail servers. An IP literal, or a
// name that is itself a public suffix, is returned as it is.
func registrable(host string) string {
	host = dnsname.Key(host)
	if host == "" {
		return ""
	}
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return host
	}
	suffix, icann := publicsuffix.PublicSuffix(host)
	for !icann {
		i := strings.IndexByte(suffix, '.')
		if i < 0 {
			break // a top-level label the list does not know ("test"): the suffix
		}
		suffix, icann = publicsuffix.PublicSuffix(suffix[i+1:])
	}
	if len(suffix) >= len(host) {
		return host
	}
	rest := host[:len(host)-len(suffix)-1] // the labels left of the suffix
	return rest[strings.LastIndexByte(rest, '.')+1:] + "." + suffix
}

// primaryMX returns the MX host a domain's mail goes to first: the lowest
// preference (ties: the first name in sort order); "" without MX hosts.
func primaryMX[H any](hosts []H, name func(H) string, pref func(H) uint16) string {
	best, bestPref := "", uint16(0)
	for _, h := range hosts {
		n, p := name(h), pref(h)
		if best == "" || p < bestPref || (p == bestPref && n < best) {
			best, bestPref = n, p
		}
	}
	return best
}

// Provider is the operator of the mail servers of some of the run's
// plaintext, partial and broken domains, known by the registrable domain of
// their most preferred MX host: a provider that fixes its servers fixes all
// these domains at once.
type Provider struct {
	Name      string   `json:"name"`                   // registrable domain of the MX hosts, A-label
	Unicode   string   `json:"name_unicode,omitempty"` // U-label form of an IDN, for display
	MXHosts   []string `json:"mx_hosts"`               // some of its MX host names (at most maxProviderHosts)
	Plaintext Count    `json:"plaintext"`
	Partial   Count    `json:"partial"`
	Broken    Count    `json:"broken"`
	AtRisk    Count    `json:"at_risk"` // the three together
}

// maxProviderHosts bounds the MX host names kept per provider.
const maxProviderHosts = 3

func (p *Provider) add(v result.Verdict, citizens int64, mx string) {
	switch v {
	case result.Plaintext:
		p.Plaintext.add(citizens)
	case result.Partial:
		p.Partial.add(citizens)
	case result.Broken:
		p.Broken.add(citizens)
	}
	p.AtRisk.add(citizens)
	if len(p.MXHosts) < maxProviderHosts && !slices.Contains(p.MXHosts, mx) {
		p.MXHosts = append(p.MXHosts, mx)
	}
}

// ProviderCoverage says how much of the run's plaintext, partial and broken
// domains the provider ranking covers: the domains with most citizens are
// grouped, up to LoadOptions.ProviderDomains of them.
type ProviderCoverage struct {
	Grouped Count `json:"grouped"` // domains looked up and grouped, and their citizens
	All     Count `json:"all"`     // every plaintext, partial and broken domain of the run
}

// callDomain is a plaintext, partial or broken domain of the run, as the
// run's history gives it.
type callDomain struct {
	domain   string
	citizens int64
	verdict  result.Verdict
}

// primaryMXOf looks up the latest stored result of each domain (those in
// full are loaded already) and returns its most preferred MX host. Lookups
// run on up to GOMAXPROCS goroutines.
func primaryMXOf(ctx context.Context, st *store.Store, domains []string, full map[string]*result.Result) (map[string]string, error) {
	mx := make([]string, len(domains))
	of := func(r *result.Result) string {
		return primaryMX(r.MX, func(h result.Host) string { return h.Name }, func(h result.Host) uint16 { return h.Preference })
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(2, runtime.GOMAXPROCS(0)))
	for i, d := range domains {
		if r := full[d]; r != nil {
			mx[i] = of(r)
			continue
		}
		g.Go(func() error {
			r, err := st.Lookup(gctx, d)
			switch {
			case errors.Is(err, store.ErrNotFound):
				return nil
			case err != nil:
				return fmt.Errorf("report: lookup: %w", err)
			}
			mx[i] = of(&r)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(domains))
	for i, d := range domains {
		if mx[i] != "" {
			out[d] = dnsname.Key(mx[i])
		}
	}
	return out, nil
}

// groupProviders groups domains by the registrable domain of their most
// preferred MX host (mxOf) and returns the top providers by citizens at
// these domains.
func groupProviders(ds []callDomain, mxOf map[string]string, top int) []Provider {
	byName := map[string]*Provider{}
	for _, d := range ds {
		mx := mxOf[d.domain]
		name := registrable(mx)
		if name == "" {
			continue
		}
		p := byName[name]
		if p == nil {
			p = &Provider{Name: name, MXHosts: []string{}}
			byName[name] = p
		}
		p.add(d.verdict, d.citizens, mx)
	}
	out := make([]Provider, 0, len(byName))
	for _, p := range byName {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Provider) int {
		return cmp.Or(cmp.Compare(b.AtRisk.Citizens, a.AtRisk.Citizens), cmp.Compare(b.AtRisk.Domains, a.AtRisk.Domains),
			strings.Compare(a.Name, b.Name))
	})
	out = slices.Clip(out[:min(len(out), max(top, 0))])
	for i := range out {
		out[i].Unicode = dnsname.Unicode(out[i].Name)
		slices.Sort(out[i].MXHosts)
	}
	return out
}
