// Package reporttest builds a small scan database for report tests through
// the store API: two finished runs over a dozen domains with every verdict,
// changes between the runs, IDN names, and hostile strings from "servers"
// (markup in MX host names, banners, certificate subjects and reasons).
package reporttest

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Hostile strings planted in the fixture; none may appear unescaped in HTML.
const (
	HostileScript = `<script>alert(1)</script>`
	HostileImg    = `<img src=x onerror=alert(2)>`
	HostileBanner = `220 <script>alert("banner")</script> ESMTP`
	HostileReason = `=HYPERLINK("http://evil.test/x") </td><b>bold</b>`
	HostileHost   = `mx.<img src=x onerror=alert(2)>.evil`
)

// Times of the fixture runs.
var (
	Run1Start = time.Date(2025, 1, 10, 1, 0, 0, 0, time.UTC)
	Run2Start = time.Date(2025, 2, 10, 1, 0, 0, 0, time.UTC)
)

// Recipient ids and addresses start with these, so tests can assert that
// none leak into the HTML.
const (
	IDPrefix   = "rid-secret-"
	AddrPrefix = "citizen-secret-"
)

type domainSpec struct {
	name     string
	citizens int
	v1, v2   result.Verdict // "" = not in that run
}

var specs = []domainSpec{
	{"big-provider.example", 40, result.Encrypted, result.Verified},
	{"plain.example", 25, result.Plaintext, result.Plaintext},
	{"partial.example", 12, result.Verified, result.Partial},
	{"dane.example", 8, result.DANE, result.DANE},
	{"sts.example", 6, result.Verified, result.MTASTS},
	{"selfsigned.example", 5, result.Encrypted, result.Encrypted},
	{"hostile.example", 4, result.Plaintext, result.Plaintext},
	{"broken.example", 3, result.Broken, result.Broken},
	{"nomail.example", 2, result.NoMail, result.NoMail},
	{"down.example", 2, result.Unreachable, result.Plaintext},
	{"dnsfail.example", 1, result.Verified, result.DNSError},
	{"xn--r8jz45g.example", 1, "", result.Verified},
	{"gone.example", 3, result.Plaintext, ""},
}

// Build creates the database at path with two finished runs (IDs 1 and 2)
// and closes it. keepAddresses stores addresses with the recipients.
func Build(ctx context.Context, path string, keepAddresses bool) error {
	st, err := store.Open(ctx, path, store.Options{KeepLastKnown: time.Nanosecond})
	if err != nil {
		return err
	}
	defer st.Close()
	for i, start := range []time.Time{Run1Start, Run2Start} {
		run, _, err := st.BeginRun(ctx, fmt.Sprintf("register-%d.csv", i+1), start)
		if err != nil {
			return err
		}
		var recips []store.Recipient
		var results []result.Result
		var nRecip int64
		for _, s := range specs {
			v := s.v1
			if i == 1 {
				v = s.v2
			}
			if v == "" {
				continue
			}
			for j := range s.citizens {
				r := store.Recipient{ID: fmt.Sprintf("%s%s-%02d", IDPrefix, s.name, j), Domain: s.name}
				if keepAddresses {
					r.Address = fmt.Sprintf("%s%02d@%s", AddrPrefix, j, s.name)
				}
				recips = append(recips, r)
				nRecip++
			}
			results = append(results, makeResult(s.name, v, run.ID, start.Add(time.Minute)))
		}
		if err := st.AddRecipients(ctx, run.ID, recips); err != nil {
			return err
		}
		if err := st.SaveResults(ctx, results); err != nil {
			return err
		}
		stats := store.RunStats{Lines: nRecip + 1, Recipients: nRecip, BadLines: 1, Domains: int64(len(results)),
			Scanned: int64(len(results)), MXIPs: 20, Connections: 21, DNSQueries: 80,
			Resolver: "127.0.0.53:53", TrustAD: true, ScannerVersion: "test", Vantage: "scan.tlsready.test"}
		if err := st.FinishRun(ctx, run.ID, stats, start.Add(time.Hour)); err != nil {
			return err
		}
	}
	return nil
}

func nextIP(domain string, k int) netip.Addr {
	h := 0
	for _, c := range domain {
		h = h*31 + int(c)
	}
	return netip.AddrFrom4([4]byte{192, 0, 2, byte((h+k)%250 + 1)})
}

func cert(subject string, valid bool, now time.Time) result.CertInfo {
	c := result.CertInfo{Subject: subject, Issuer: "CN=Test CA", NotBefore: now.AddDate(0, -1, 0), NotAfter: now.AddDate(0, 2, 0),
		SHA256: "00ff", DNSNames: []string{"mx.example"}, KeyType: "ECDSA-P256"}
	if !valid {
		c.Issuer = subject
	}
	return c
}

// makeResult builds a plausible result for a verdict.
func makeResult(domain string, v result.Verdict, runID int64, at time.Time) result.Result {
	r := result.Result{Domain: domain, Verdict: v, ScannedAt: at, RunID: runID, DNSStatus: "ok",
		Reason: "fixture " + string(v), Duration: time.Second}
	// Like the scanner, the fixture leaves r.Unicode empty for the IDN
	// xn--r8jz45g.example (例え.example): the report derives it.
	tlsOK := func(subject string, valid bool) *result.TLSInfo {
		return &result.TLSInfo{Version: "TLS 1.3", VersionID: 0x0304, CipherSuite: "TLS_AES_128_GCM_SHA256",
			ChainTrusted: valid, SelfSigned: !valid, Certs: []result.CertInfo{cert(subject, valid, at)}}
	}
	addr := func(k int, status result.ProbeStatus, t *result.TLSInfo, pkix bool, flags ...string) result.Addr {
		ip := nextIP(domain, k)
		p := &result.Probe{IP: ip, SNI: "mx." + domain, Status: status, Reachable: status.Reachable(),
			Banner: "220 mx." + domain + " ESMTP", BannerCode: 220, STARTTLSOffered: status == result.ProbeOK,
			TLS: t, StartedAt: at, Duration: 100 * time.Millisecond}
		if !status.Reachable() {
			p.Banner, p.BannerCode = "", 0
		}
		return result.Addr{IP: ip, Probe: p, NameMatch: pkix, PKIXValid: pkix, Flags: flags}
	}
	host := func(name string, pref uint16, addrs ...result.Addr) result.Host {
		return result.Host{Name: name, Preference: pref, DNSStatus: "ok", Addrs: addrs}
	}
	mx := "mx." + domain
	// daneMX: one DNSSEC-signed MX with a DANE-EE TLSA record, which the
	// certificate matches or not.
	daneMX := func(subject string, match bool, data string) {
		a := addr(0, result.ProbeOK, tlsOK(subject, true), true)
		a.DANEMatch = &match
		h := host(mx, 10, a)
		h.Secure = true
		h.TLSA = &result.TLSA{Name: "_25._tcp." + mx, Secure: true, Status: "ok",
			Records: []result.TLSARecord{{Usage: 3, Selector: 1, MatchingType: 1, Data: data}}}
		r.MX, r.MXSecure = []result.Host{h}, true
	}
	switch v {
	case result.DANE:
		daneMX("CN="+mx, true, "abcd")
	case result.MTASTS:
		r.MX = []result.Host{host(mx, 10, addr(0, result.ProbeOK, tlsOK("CN="+mx, true), true))}
		r.MTASTS = &result.STSPolicy{RecordID: "2025", Mode: "enforce", MX: []string{"*." + domain}, MaxAge: 86400, FetchedAt: at}
		r.TLSRPT = &result.TLSRPT{RUA: []string{"mailto:tlsrpt@" + domain}}
	case result.Verified:
		r.MX = []result.Host{host(mx, 10, addr(0, result.ProbeOK, tlsOK("CN="+mx, true), true)),
			host("mx2."+domain, 20, addr(1, result.ProbeOK, tlsOK("CN=mx2."+domain, true), true))}
		r.Flags = []string{result.FlagNoTLSRPT}
	case result.Encrypted:
		subject := "CN=" + mx
		if domain == "selfsigned.example" {
			subject = "CN=" + HostileScript
		}
		t := tlsOK(subject, false)
		t.ChainError = "x509: certificate signed by unknown authority"
		r.MX = []result.Host{host(mx, 10, addr(0, result.ProbeOK, t, false, result.FlagCertSelfSigned))}
		r.Flags = []string{result.FlagCertSelfSigned, result.FlagNoTLSRPT}
	case result.Partial:
		t := tlsOK("CN="+mx, true)
		t.Version, t.VersionID = "TLS 1.0", 0x0301
		r.MX = []result.Host{host(mx, 10, addr(0, result.ProbeOK, t, true, result.FlagTLS10)),
			host("mx2."+domain, 20, addr(1, result.ProbeNoSTARTTLS, nil, false, result.FlagNoSTARTTLS))}
		r.Flags = []string{result.FlagNoSTARTTLS, result.FlagTLS10}
	case result.Plaintext:
		a := addr(0, result.ProbeNoSTARTTLS, nil, false, result.FlagNoSTARTTLS)
		name := mx
		if domain == "hostile.example" {
			a.Probe.Banner = HostileBanner
			name = HostileHost
			r.Reason = HostileReason
		}
		r.MX = []result.Host{host(name, 10, a)}
		r.Flags = []string{result.FlagNoSTARTTLS}
	case result.Broken:
		daneMX("CN="+HostileImg, false, "ffff")
		r.Flags = []string{result.FlagDANEMismatch}
	case result.NoMail:
		r.NullMX = true
		r.Flags = []string{result.FlagNullMX}
		r.MX = []result.Host{}
	case result.Unreachable:
		r.MX = []result.Host{host(mx, 10, addr(0, result.ProbeConnectFailed, nil, false, result.FlagConnectFailed))}
		r.Flags = []string{result.FlagConnectFailed}
	case result.DNSError:
		r.DNSStatus = "servfail"
		r.Flags = []string{result.FlagServfail}
		r.MX = []result.Host{}
	}
	return r
}
