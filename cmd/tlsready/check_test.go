package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/scantest"
)

// checkWorld is a small world of hosts that are slow, silent or behind
// failing lookups.
type checkWorld struct {
	*scantest.Internet
	tarpit, silent netip.Addr
}

func newCheckWorld(t *testing.T) checkWorld {
	t.Helper()
	b := scantest.NewBuilder(nil)
	// The banner comes 8 s after the connection: the first "waiting for"
	// line is due after 5 s of silence and the watch looks once a second,
	// so a slow machine has three looks to print it before the banner.
	b.MailDomain("tarpit.test", scantest.SMTPHost{BannerDelay: 8 * time.Second})
	b.MailDomain("silent.test", scantest.SMTPHost{Silent: true})
	// A validating resolver answers a bogus signature with SERVFAIL.
	b.Secure("bogus.test")
	b.MailDomain("bogus.test", scantest.SMTPHost{})
	b.Fault("bogus.test", scantest.FaultServfail)
	// The policy lookups fail, the MX lookup works.
	b.MailDomain("stsfail.test", scantest.SMTPHost{})
	b.Fault("_mta-sts.stsfail.test", scantest.FaultServfail)
	b.Fault("_smtp._tls.stsfail.test", scantest.FaultServfail)
	b.Secure("signed.test")
	b.MailDomain("signed.test", scantest.SMTPHost{})
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	w := checkWorld{Internet: scantest.StartT(t, sc)}
	for ip, h := range sc.SMTP {
		switch h.Name {
		case "mx1.tarpit.test":
			w.tarpit = ip
		case "mx1.silent.test":
			w.silent = ip
		}
	}
	return w
}

func checkArgs(w checkWorld, extra ...string) []string {
	return append([]string{"check", "--resolver", w.DNSAddr, "--ca-file", w.CAFile, "--allow-private",
		"--smtp-port", fmt.Sprint(w.SMTPPort), "--https-port", fmt.Sprint(w.HTTPSPort),
		"--helo", "test.tlsready.invalid", "--temp-retry", "0", "--trust-ad", "true"}, extra...)
}

// section returns the lines check printed for one domain.
func section(out, domain string) string {
	i := strings.Index(out, domain+": ")
	if i < 0 {
		return ""
	}
	rest := out[i+len(domain):]
	if j := regexp.MustCompile(`\n\S`).FindStringIndex(rest); j != nil {
		rest = rest[:j[0]]
	}
	return out[i:i+len(domain)] + rest
}

// TestCheckPrintsWhatItObserved: the banner code once; no STARTTLS line
// after a banner timeout; a failed MX lookup (what a validating resolver
// answers to a bogus signature) makes DNSSEC, MTA-STS and TLSRPT unknown,
// never "insecure" or "none"; failed policy lookups are unknown; without a
// trusted AD bit DNSSEC is not judged.
func TestCheckPrintsWhatItObserved(t *testing.T) {
	t.Parallel()
	w := newCheckWorld(t)
	code, out, stderr := runCLI(t, checkArgs(w, "--probe-timeout", "2s", "--quiet", "silent.test", "bogus.test", "stsfail.test", "signed.test")...)
	if code != exitOK {
		t.Fatalf("check: exit %d: %s", code, stderr)
	}
	silent := section(out, "silent.test")
	if !strings.Contains(silent, "timeout") || strings.Contains(silent, "STARTTLS") || strings.Contains(silent, "banner:   ") {
		t.Errorf("silent host: want a timeout without banner or STARTTLS lines:\n%s", silent)
	}
	bogus := section(out, "bogus.test")
	for _, want := range []string{"DNS:   servfail, MX RRset DNSSEC unknown", "MTA-STS: unknown (lookup failed)", "TLSRPT:  unknown (lookup failed)"} {
		if !strings.Contains(bogus, want) {
			t.Errorf("bogus.test lacks %q:\n%s", want, bogus)
		}
	}
	if strings.Contains(bogus, "insecure") || strings.Contains(bogus, ": none") {
		t.Errorf("bogus.test: says insecure or none:\n%s", bogus)
	}
	sts := section(out, "stsfail.test")
	for _, want := range []string{"MTA-STS: unknown (lookup failed)", "TLSRPT:  unknown (lookup failed)", "banner:   220 mx1.stsfail.test ESMTP", "STARTTLS: offered=true"} {
		if !strings.Contains(sts, want) {
			t.Errorf("stsfail.test lacks %q:\n%s", want, sts)
		}
	}
	if strings.Contains(out, "220 220") {
		t.Errorf("banner code printed twice:\n%s", out)
	}
	if s := section(out, "signed.test"); !strings.Contains(s, "MX RRset DNSSEC secure") || !strings.Contains(s, "MTA-STS: none") {
		t.Errorf("signed.test:\n%s", s)
	}

	_, out, _ = runCLI(t, checkArgs(w, "--trust-ad", "false", "--quiet", "stsfail.test")...)
	if !strings.Contains(out, "MX RRset DNSSEC not judged") {
		t.Errorf("untrusted AD bit: DNSSEC is not judged:\n%s", out)
	}
	_, out, _ = runCLI(t, checkArgs(w, "--no-policy", "--quiet", "stsfail.test")...)
	if !strings.Contains(out, "MTA-STS: not looked at (--no-policy)") {
		t.Errorf("--no-policy:\n%s", out)
	}
}

// TestCheckProgress: on a slow host check says which IP it is probing and,
// after a few seconds of silence, what it waits for; --quiet says nothing.
func TestCheckProgress(t *testing.T) {
	t.Parallel()
	w := newCheckWorld(t)
	code, out, stderr := runCLI(t, checkArgs(w, "--probe-timeout", "20s", "tarpit.test")...)
	if code != exitOK || !strings.Contains(out, "tarpit.test: verified") {
		t.Fatalf("check: exit %d:\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		fmt.Sprintf("probing %s:%d…", w.tarpit, w.SMTPPort),
		fmt.Sprintf("waiting for %s (banner)… 5s", w.tarpit),
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "(EHLO reply)") {
		t.Errorf("a waiting line for a reply that came at once:\n%s", stderr)
	}
}

func TestPhaseAfter(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"EHLO test.tlsready.invalid\r\n": "EHLO reply",
		"HELO x\r\n":                     "HELO reply",
		"STARTTLS\r\n":                   "STARTTLS reply",
		"QUIT\r\n":                       "QUIT reply",
		"\x16\x03\x01\x00\x10":           "TLS handshake",
		"\x17\x03\x03\x00\x10":           "TLS",
		"NOOP\r\n":                       "reply to NOOP",
	} {
		if got := phaseAfter([]byte(in)); got != want {
			t.Errorf("phaseAfter(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestProbeWatchSpinner: on a terminal one spinner line names the IP silent
// the longest, and is cleared when the last connection closes.
func TestProbeWatchSpinner(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &probeWatch{out: &buf, tty: true, conns: map[*watchedConn]struct{}{}}
	now := time.Now()
	a := &watchedConn{w: w, ip: "192.0.2.1", phase: "banner", last: now.Add(-12 * time.Second)}
	b := &watchedConn{w: w, ip: "192.0.2.2", phase: "EHLO reply", last: now.Add(-time.Second)}
	w.conns[a], w.conns[b] = struct{}{}, struct{}{}
	w.drawLocked(now)
	if got := buf.String(); !strings.HasPrefix(got, "\r\x1b[K") || !strings.Contains(got, "waiting for 192.0.2.1 (banner) 12s (+1 more)") {
		t.Errorf("spinner line %q", got)
	}
	a.forget()
	buf.Reset()
	b.forget()
	if got := buf.String(); got != "\r\x1b[K" {
		t.Errorf("after the last connection closed: %q, want the line cleared", got)
	}
}
