package scantest

import (
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// httpClient fetches from the world: it dials the IP the test names for
// each host (like DNS would) on the HTTPS port and trusts the world's CA.
func TestHTTPS(t *testing.T) {
	t.Parallel()
	policy := Policy("enforce", 24*time.Hour, "mx.example.test", "*.example.net")
	hosts := map[string]HTTPSHost{
		"ok.test":         {Body: policy},
		"json.test":       {Body: "{}", ContentType: "application/json"},
		"status.test":     {Status: 500, Body: "oops"},
		"redirect.test":   {Redirect: "https://elsewhere.test/.well-known/mta-sts.txt"},
		"selfsigned.test": {Body: policy, Cert: CertSelfSigned},
		"expired.test":    {Body: policy, Cert: CertExpired},
		"delay.test":      {Body: policy, BodyDelay: 30 * time.Millisecond},
		"drip.test":       {Body: "version: STSv1\n", DripBody: time.Millisecond},
		"huge.test":       {Body: policy, HugeBody: 200_000},
	}
	ips := map[string]netip.Addr{}
	var shared netip.Addr
	n, _ := start(t, func(b *Builder) {
		for name, h := range hosts {
			ips["mta-sts."+name] = b.MTASTS(name, h, "1")
		}
		// Two names on one IP, told apart by SNI.
		shared = b.IP()
		b.HTTPSHost(shared, "mta-sts.a.test", HTTPSHost{Body: "A"})
		b.HTTPSHost(shared, "mta-sts.b.test", HTTPSHost{Body: "B"})
		ips["mta-sts.a.test"], ips["mta-sts.b.test"] = shared, shared
	})
	c := HTTPClient(n, ips)
	get := func(host, path string) (*http.Response, string, error) {
		resp, err := c.Get("https://" + host + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return resp, string(body), err
	}
	check := func(host string, status int, ct, body string) {
		t.Helper()
		resp, got, err := get(host, PolicyPath)
		if err != nil {
			t.Errorf("%s: %v", host, err)
			return
		}
		if resp.StatusCode != status || resp.Header.Get("Content-Type") != ct || got != body {
			t.Errorf("%s: %d %q %q, want %d %q %q", host, resp.StatusCode, resp.Header.Get("Content-Type"), got, status, ct, body)
		}
	}
	check("mta-sts.ok.test", 200, "text/plain", policy)
	check("mta-sts.json.test", 200, "application/json", "{}")
	check("mta-sts.status.test", 500, "text/plain", "oops")
	check("mta-sts.drip.test", 200, "text/plain", "version: STSv1\n")
	check("mta-sts.a.test", 200, "text/plain", "A")
	check("mta-sts.b.test", 200, "text/plain", "B")

	start := time.Now()
	check("mta-sts.delay.test", 200, "text/plain", policy)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("delayed body after %v", d)
	}

	resp, _, err := get("mta-sts.redirect.test", PolicyPath)
	if err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != hosts["redirect.test"].Redirect {
		t.Errorf("redirect: %v %v", resp, err)
	}
	resp, _, err = get("mta-sts.ok.test", "/other")
	if err != nil || resp.StatusCode != 404 {
		t.Errorf("other path: %v %v", resp, err)
	}
	_, body, err := get("mta-sts.huge.test", PolicyPath)
	if err != nil || len(body) != len(policy)+200_000 || !strings.HasPrefix(body, policy) {
		t.Errorf("huge body: %d bytes, %v", len(body), err)
	}

	for host, ok := range map[string]func(error) bool{
		"mta-sts.selfsigned.test": func(err error) bool { return errors.As(err, new(x509.UnknownAuthorityError)) },
		"mta-sts.expired.test": func(err error) bool {
			var e x509.CertificateInvalidError
			return errors.As(err, &e) && e.Reason == x509.Expired
		},
	} {
		if _, _, err := get(host, PolicyPath); !ok(err) {
			t.Errorf("%s: %v", host, err)
		}
	}

	cnt := n.Counters()
	if cnt.HTTPSRequests != 10 || cnt.SNI["mta-sts.ok.test"] != 2 {
		t.Errorf("HTTPSRequests = %d, SNI %v", cnt.HTTPSRequests, cnt.SNI)
	}
	if cnt.RoundTrips < cnt.HTTPSRequests*2 {
		t.Errorf("RoundTrips = %d for %d requests", cnt.RoundTrips, cnt.HTTPSRequests)
	}
}

// A client still waiting for a delayed body does not stop Close.
func TestHTTPSCloseDuringDelay(t *testing.T) {
	t.Parallel()
	b := NewBuilder(nil)
	ip := b.MTASTS("slow.test", HTTPSHost{Body: "x", BodyDelay: time.Hour}, "1")
	n := startUnclosed(t, b)
	inHandler := make(chan struct{})
	hook := func() { close(inHandler) }
	n.https.onRequest.Store(&hook)
	c := HTTPClient(n, map[string]netip.Addr{"mta-sts.slow.test": ip})
	errc := make(chan error, 1)
	go func() {
		resp, err := c.Get("https://mta-sts.slow.test" + PolicyPath)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	select {
	case <-inHandler:
	case err := <-errc:
		t.Fatalf("request ended early: %v", err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-errc; err == nil {
		t.Error("request succeeded after Close")
	}
}
