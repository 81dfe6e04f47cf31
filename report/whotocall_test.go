package report

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

func TestRegistrable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"mx1.bigmail.test", "bigmail.test"},
		{"MX1.BigMail.Test.", "bigmail.test"},
		{"mx.mail.example.co.uk", "example.co.uk"},
		{"aspmx.l.google.com", "google.com"},
		{"mx1.hoster.co.jp", "hoster.co.jp"},
		{"mail.xn--r8jz45g.example", "xn--r8jz45g.example"},
		{"mx.customer.herokuapp.com", "herokuapp.com"}, // a private suffix: grouped under its operator
		{"bigmail.test", "bigmail.test"},
		{"co.uk", "co.uk"},
		{"localhost", "localhost"},
		{"192.0.2.25", "192.0.2.25"},
		{"[2001:db8::25]", "[2001:db8::25]"},
		{"", ""},
	} {
		if got := registrable(c.in); got != c.want {
			t.Errorf("registrable(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestFlagAdviceComplete: every flag that makes mail travel in plaintext or
// breaks delivery (critical) has a cause and a fix in every language; the
// advice names only real flags; the Japanese uses full-width punctuation.
func TestFlagAdviceComplete(t *testing.T) {
	t.Parallel()
	flags := result.AllFlags
	for f, langs := range flagAdvice {
		if !slices.Contains(flags, f) {
			t.Errorf("flagAdvice has %q, which is not a Flag* constant", f)
		}
		for _, lang := range Languages {
			a := langs[lang]
			if a.Cause == "" || a.Fix == "" {
				t.Errorf("flagAdvice[%q][%s] lacks a cause or a fix", f, lang)
			}
			if lang == "ja" {
				for _, s := range []string{a.Cause, a.Fix} {
					if bad := halfWidthPunct(s); bad != "" {
						t.Errorf("flagAdvice[%q][ja]: %s", f, bad)
					}
				}
				if !strings.HasSuffix(a.Fix, "。") {
					t.Errorf("flagAdvice[%q][ja] fix does not end with 。", f)
				}
			} else if !strings.HasSuffix(a.Fix, ".") {
				t.Errorf("flagAdvice[%q][%s] fix does not end with a full stop", f, lang)
			}
		}
	}
	for _, f := range flags {
		if FlagSeverity(f) == SeverityCritical && flagAdvice[f] == nil {
			t.Errorf("critical flag %q has no advice", f)
		}
	}
	for _, lang := range Languages {
		for _, v := range CallVerdicts {
			if genericCause[lang][v] == "" || !strings.Contains(catalogue[lang]["wrong_"+string(v)], "{1}") {
				t.Errorf("%s: no generic cause or wrong_ message for %s", lang, v)
			}
		}
	}
}

func TestDomainAdvice(t *testing.T) {
	t.Parallel()
	a := DomainAdvice("en", result.Plaintext, []string{result.FlagNoTLSRPT, result.FlagNoSTARTTLS})
	if a.Wrong != "Every message to this domain arrives in plaintext: STARTTLS is not offered." ||
		len(a.Fixes) != 1 || !strings.HasPrefix(a.Fixes[0], "Enable STARTTLS") {
		t.Errorf("plaintext: %+v", a)
	}
	// Broken: the policy flag is the cause, the certificate flag a further fix.
	a = DomainAdvice("en", result.Broken, []string{result.FlagCertSelfSigned, result.FlagNoTLSRPT, result.FlagSTSCertInvalid})
	if !strings.Contains(a.Wrong, "cannot deliver to it at all: a server lacks the valid certificate") || len(a.Fixes) != 2 ||
		a.Fixes[0] != flagAdvice[result.FlagSTSCertInvalid]["en"].Fix || a.Fixes[1] != flagAdvice[result.FlagCertSelfSigned]["en"].Fix {
		t.Errorf("broken: %+v", a)
	}
	// Partial: the critical flag before the warning, whatever their order.
	a = DomainAdvice("ja", result.Partial, []string{result.FlagConnectFailed, result.FlagSTARTTLSRefused})
	if a.Wrong != "STARTTLS コマンドが拒否されるため、送信側が接続するサーバーによっては、このドメインへのメールが平文で届きます。" ||
		len(a.Fixes) != 2 || a.Fixes[1] != flagAdvice[result.FlagConnectFailed]["ja"].Fix {
		t.Errorf("partial ja: %+v", a)
	}
	// No flag with advice: a generic cause, no fix.
	a = DomainAdvice("ja", result.Plaintext, []string{result.FlagNoTLSRPT, "some-future-flag"})
	if a.Wrong != "どのメールサーバーも STARTTLS を完了しないため、このドメインへのメールはすべて平文で届きます。" || len(a.Fixes) != 0 {
		t.Errorf("generic ja: %+v", a)
	}
	many := []string{result.FlagNoSTARTTLS, result.FlagSTARTTLSRefused, result.FlagHandshakeFailed, result.FlagTimeout, result.FlagCertExpired}
	if a := DomainAdvice("en", result.Partial, many); len(a.Fixes) != maxFixes {
		t.Errorf("%d fixes, want at most %d", len(a.Fixes), maxFixes)
	}
}

// providerDB stores one finished run: customers of a hoster (two MX hosts
// under hoster.co.jp) with every call verdict and a verified one, a
// self-hosted plaintext domain with more citizens than the hoster's at-risk
// domains together, a domain whose backup MX is elsewhere, and one at an
// IDN provider.
func providerDB(t *testing.T) *store.Store {
	t.Helper()
	ctx := t.Context()
	st := openStore(t, filepath.Join(t.TempDir(), "providers.db"), store.Options{KeepLastKnown: time.Nanosecond})
	run, _, err := st.BeginRun(ctx, "register.txt", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	hoster := []result.Host{{Name: "mx2.hoster.co.jp", Preference: 20}, {Name: "mx1.hoster.co.jp", Preference: 10}}
	type spec struct {
		domain   string
		citizens int
		v        result.Verdict
		flags    []string
		mx       []result.Host
	}
	specs := []spec{
		{"self.example", 30, result.Plaintext, []string{result.FlagNoSTARTTLS}, []result.Host{{Name: "mx.self.example", Preference: 10}}},
		{"city-a.example", 10, result.Plaintext, []string{result.FlagNoSTARTTLS, result.FlagNoTLSRPT}, hoster},
		{"town-b.example", 5, result.Partial, []string{result.FlagSTARTTLSRefused}, hoster},
		{"village-c.example", 2, result.Broken, []string{result.FlagSTSMXMismatch}, hoster},
		{"backup.example", 1, result.Plaintext, []string{result.FlagNoSTARTTLS},
			[]result.Host{{Name: "mx.elsewhere.example", Preference: 50}, {Name: "mx3.hoster.co.jp", Preference: 5}}},
		{"safe.example", 100, result.Verified, nil, hoster},
		{"xn--r8jz45g.example", 3, result.Plaintext, []string{result.FlagNoSTARTTLS},
			[]result.Host{{Name: "mail.xn--r8jz45g.example", Preference: 10}}},
	}
	var recips []store.Recipient
	var results []result.Result
	for _, s := range specs {
		for i := range s.citizens {
			recips = append(recips, store.Recipient{ID: fmt.Sprintf("%s-%d", s.domain, i), Domain: s.domain})
		}
		results = append(results, result.Result{Domain: s.domain, Verdict: s.v, Flags: s.flags, MX: s.mx,
			ScannedAt: fixedNow, RunID: run.ID, DNSStatus: "ok"})
	}
	if err := st.AddRecipients(ctx, run.ID, recips); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, run.ID, store.RunStats{Recipients: int64(len(recips)), Domains: int64(len(results))}, fixedNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestWhoToCall: the providers are ranked by citizens at their plaintext,
// partial and broken domains (the registrable domain of each domain's most
// preferred MX host), and each such domain says what is wrong and what
// fixes it, in the model and in both languages' HTML.
func TestWhoToCall(t *testing.T) {
	t.Parallel()
	st := providerDB(t)
	m, err := Load(t.Context(), st, 0, LoadOptions{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m.Providers {
		names = append(names, p.Name)
	}
	if want := []string{"self.example", "hoster.co.jp", "xn--r8jz45g.example"}; !slices.Equal(names, want) {
		t.Fatalf("providers %v, want %v", names, want)
	}
	h := m.Providers[1]
	if h.Plaintext != (Count{Citizens: 11, Domains: 2}) || h.Partial != (Count{Citizens: 5, Domains: 1}) ||
		h.Broken != (Count{Citizens: 2, Domains: 1}) || h.AtRisk != (Count{Citizens: 18, Domains: 4}) ||
		!slices.Equal(h.MXHosts, []string{"mx1.hoster.co.jp", "mx3.hoster.co.jp"}) {
		t.Errorf("hoster.co.jp: %+v", h)
	}
	if p := m.Providers[2]; p.Unicode != "例え.example" {
		t.Errorf("IDN provider: %+v", p)
	}
	var contacts []string
	for _, c := range m.Contacts {
		contacts = append(contacts, c.Domain+"@"+c.Provider)
	}
	if want := []string{"self.example@self.example", "city-a.example@hoster.co.jp", "town-b.example@hoster.co.jp",
		"xn--r8jz45g.example@xn--r8jz45g.example", "village-c.example@hoster.co.jp", "backup.example@hoster.co.jp"}; !slices.Equal(contacts, want) {
		t.Errorf("contacts %v, want %v", contacts, want)
	}
	if m.ProviderCoverage.Grouped != m.ProviderCoverage.All || m.ProviderCoverage.All != (Count{Citizens: 51, Domains: 6}) {
		t.Errorf("coverage %+v", m.ProviderCoverage)
	}
	if strings.Contains(renderHTML(t, m, "en"), `id="provider-coverage"`) {
		t.Error("a coverage note though every domain is grouped")
	}
	// Only the two domains with most citizens grouped: the ranking says so,
	// and every contact still names its provider.
	m2, err := Load(t.Context(), st, 0, LoadOptions{ProviderDomains: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(m2.Providers) != 2 || m2.Providers[1].AtRisk != (Count{Citizens: 10, Domains: 1}) ||
		m2.ProviderCoverage.Grouped != (Count{Citizens: 40, Domains: 2}) || m2.ProviderCoverage.All != m.ProviderCoverage.All {
		t.Errorf("ProviderDomains 2: providers %+v, coverage %+v", m2.Providers, m2.ProviderCoverage)
	}
	for i, c := range m2.Contacts {
		if c.Provider != m.Contacts[i].Provider {
			t.Errorf("ProviderDomains 2: contact %s has provider %q, want %q", c.Domain, c.Provider, m.Contacts[i].Provider)
		}
	}
	for _, lang := range Languages {
		doc, err := html.Parse(strings.NewReader(renderHTML(t, m2, lang)))
		if err != nil {
			t.Fatal(err)
		}
		ids, _ := indexDOM(doc)
		if n := ids["provider-coverage"]; n == nil || !strings.Contains(nodeText(n), "78.4%") {
			t.Errorf("%s: no coverage note for 2 of 6 domains grouped (78.4%% of their citizens)", lang)
		}
	}
	if m3, err := Load(t.Context(), st, 0, LoadOptions{TopProviders: -1, TopContacts: 2}); err != nil || len(m3.Providers) != 0 ||
		len(m3.Contacts) != 2 || m3.Contacts[1].Provider != "hoster.co.jp" {
		t.Errorf("TopProviders -1, TopContacts 2: %+v, %v", m3, err)
	}

	for _, lang := range Languages {
		doc, err := html.Parse(strings.NewReader(renderHTML(t, m, lang)))
		if err != nil {
			t.Fatal(err)
		}
		rows := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasAttr(n, "data-provider", "hoster.co.jp") })
		if len(rows) != 1 || !strings.Contains(nodeText(rows[0]), "mx1.hoster.co.jp") || !strings.HasSuffix(nodeText(rows[0]), "18") {
			t.Errorf("%s: hoster.co.jp row missing or wrong", lang)
		}
		ids, _ := indexDOM(doc)
		table := ids["contact-table"]
		if table == nil {
			t.Fatalf("%s: no contact table", lang)
		}
		crows := findAll(table, func(n *html.Node) bool { return n.Data == "tr" && hasAttr(n, "data-verdict", "partial") })
		want := DomainAdvice(lang, result.Partial, []string{result.FlagSTARTTLSRefused})
		if len(crows) != 1 || !strings.Contains(nodeText(crows[0]), want.Wrong) || !strings.Contains(nodeText(crows[0]), want.Fixes[0]) {
			t.Errorf("%s: town-b.example row does not say what is wrong and what fixes it", lang)
		}
	}
}

// TestTfKeysInCatalogue: the messages with placeholders the template fills
// (Tf) exist in every language, with the same placeholders.
func TestTfKeysInCatalogue(t *testing.T) {
	t.Parallel()
	keys := regexp.MustCompile(`Tf "([a-z_]+)"`).FindAllStringSubmatch(reportTmpl, -1)
	if len(keys) < 5 {
		t.Fatalf("%d Tf calls in the template", len(keys))
	}
	keys = append(keys, []string{"", "t_more"})
	for _, k := range keys {
		en := catalogue["en"][k[1]]
		for _, lang := range Languages {
			msg := catalogue[lang][k[1]]
			if msg == "" {
				t.Errorf("%s lacks %q", lang, k[1])
			}
			for i := 1; i <= 5; i++ {
				ph := fmt.Sprintf("{%d}", i)
				if strings.Contains(en, ph) != strings.Contains(msg, ph) {
					t.Errorf("%s %q and en differ in %s", lang, k[1], ph)
				}
			}
		}
	}
}
