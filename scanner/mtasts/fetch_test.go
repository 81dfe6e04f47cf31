package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testNow is the fixed "now" of the fetch tests.
var testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testCA is a certificate authority generated for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tlsready test CA"},
		NotBefore:             testNow.Add(-24 * time.Hour),
		NotAfter:              testNow.Add(365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue returns a server certificate for names, valid from notBefore to notAfter.
func (ca *testCA) issue(t *testing.T, notBefore, notAfter time.Time, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// mapDialer dials the address a name:port maps to; other names fail like an
// unknown host would.
type mapDialer map[string]string

func (m mapDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	target, ok := m[addr]
	if !ok {
		return nil, fmt.Errorf("no route to %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// countingDialer counts the bytes read from its connections.
type countingDialer struct {
	d    Dialer
	read atomic.Int64
}

func (cd *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := cd.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &cd.read}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.n.Add(int64(n))
	return n, err
}

type fetchEnv struct {
	cfg    FetchConfig
	domain string
	srv    *httptest.Server
	hits   atomic.Int32
}

// newFetchEnv starts a TLS server on 127.0.0.1 presenting cert and serving h,
// and returns a FetchConfig whose Dialer maps mta-sts.example.test:<port>
// to it.
func newFetchEnv(t *testing.T, ca *testCA, cert tls.Certificate, h http.HandlerFunc) *fetchEnv {
	t.Helper()
	env := &fetchEnv{domain: "example.test"}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		env.hits.Add(1)
		h(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point of some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	env.srv = srv
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	env.cfg = FetchConfig{
		RootCAs: ca.pool,
		Port:    p,
		Timeout: 5 * time.Second,
		Dialer:  mapDialer{"mta-sts.example.test:" + port: srv.Listener.Addr().String()},
		Now:     func() time.Time { return testNow },
	}
	return env
}

func servePolicy(body, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		if contentType == "" {
			w.Header()["Content-Type"] = nil // suppress sniffing
		} else {
			w.Header().Set("Content-Type", contentType)
		}
		io.WriteString(w, body)
	}
}

func wantReason(t *testing.T, err error, reason string) *FetchError {
	t.Helper()
	var fe *FetchError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *FetchError", err, err)
	}
	if fe.Reason != reason {
		t.Fatalf("reason %q, want %q (error: %v)", fe.Reason, reason, err)
	}
	if reason != ReasonSyntax && !errors.Is(err, ErrPolicyFetch) {
		t.Fatalf("error %v does not match ErrPolicyFetch", err)
	}
	return fe
}

func TestFetchOK(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert := ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "mta-sts.example.test")
	for _, ct := range []string{"text/plain", "text/plain; charset=utf-8", "TEXT/PLAIN;charset=\"us-ascii\""} {
		env := newFetchEnv(t, ca, cert, servePolicy(rfcPolicy, ct))
		p, body, err := Fetch(t.Context(), env.cfg, "Example.Test.")
		if err != nil {
			t.Fatalf("%s: %v", ct, err)
		}
		if string(body) != rfcPolicy || p.Mode != ModeEnforce || len(p.MX) != 3 || p.MaxAge != 604800 {
			t.Fatalf("%s: got %+v, body %q", ct, p, body)
		}
	}
}

func TestFetchCertificate(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	other := newTestCA(t)
	good := ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "mta-sts.example.test")
	tests := []struct {
		name string
		cert tls.Certificate
		// check is the x509 error expected inside.
		check func(error) bool
	}{
		{"expired", ca.issue(t, testNow.Add(-2*time.Hour), testNow.Add(-time.Hour), "mta-sts.example.test"), func(err error) bool {
			var ci x509.CertificateInvalidError
			return errors.As(err, &ci) && ci.Reason == x509.Expired
		}},
		{"not yet valid", ca.issue(t, testNow.Add(time.Hour), testNow.Add(2*time.Hour), "mta-sts.example.test"), func(err error) bool {
			var ci x509.CertificateInvalidError
			return errors.As(err, &ci) && ci.Reason == x509.Expired
		}},
		{"wrong name", ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "example.test", "mail.example.test"), func(err error) bool {
			var he x509.HostnameError
			return errors.As(err, &he)
		}},
		{"wildcard for parent", ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "*.sts.example.test"), func(err error) bool {
			var he x509.HostnameError
			return errors.As(err, &he)
		}},
		{"untrusted", other.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "mta-sts.example.test"), func(err error) bool {
			var ua x509.UnknownAuthorityError
			return errors.As(err, &ua)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newFetchEnv(t, ca, tc.cert, servePolicy(rfcPolicy, "text/plain"))
			_, _, err := Fetch(t.Context(), env.cfg, env.domain)
			wantReason(t, err, ReasonCertInvalid)
			if !tc.check(err) {
				t.Fatalf("unexpected cause: %v", err)
			}
			if env.hits.Load() != 0 {
				t.Fatal("request sent over an invalid connection")
			}
		})
	}
	// A wildcard certificate for *.example.test is valid for mta-sts.example.test.
	wild := ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "*.example.test")
	env := newFetchEnv(t, ca, wild, servePolicy(rfcPolicy, "text/plain"))
	if _, _, err := Fetch(t.Context(), env.cfg, env.domain); err != nil {
		t.Fatalf("wildcard: %v", err)
	}
	// Now matters: the "good" certificate is expired a day later.
	env = newFetchEnv(t, ca, good, servePolicy(rfcPolicy, "text/plain"))
	env.cfg.Now = func() time.Time { return testNow.Add(24 * time.Hour) }
	_, _, err := Fetch(t.Context(), env.cfg, env.domain)
	wantReason(t, err, ReasonCertInvalid)
}

func TestFetchHTTP(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert := ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "mta-sts.example.test")

	t.Run("redirect", func(t *testing.T) {
		t.Parallel()
		var target atomic.Int32
		env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				target.Add(1)
				servePolicy(rfcPolicy, "text/plain")(w, r)
				return
			}
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
		})
		_, _, err := Fetch(t.Context(), env.cfg, env.domain)
		fe := wantReason(t, err, ReasonRedirect)
		if fe.StatusCode != http.StatusMovedPermanently || target.Load() != 0 {
			t.Fatalf("status %d, redirect followed %d times", fe.StatusCode, target.Load())
		}
	})

	t.Run("redirect with caller's client", func(t *testing.T) {
		t.Parallel()
		var target atomic.Int32
		env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				target.Add(1)
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		})
		tr := &http.Transport{
			DialContext:     env.cfg.Dialer.DialContext,
			TLSClientConfig: &tls.Config{RootCAs: ca.pool, Time: env.cfg.Now},
		}
		t.Cleanup(tr.CloseIdleConnections)
		client := &http.Client{Transport: tr}
		cfg := env.cfg
		cfg.Client = client
		_, _, err := Fetch(t.Context(), cfg, env.domain)
		wantReason(t, err, ReasonRedirect)
		if target.Load() != 0 || client.CheckRedirect != nil {
			t.Fatal("redirect followed or caller's client modified")
		}
	})

	for _, code := range []int{http.StatusNotFound, http.StatusInternalServerError, http.StatusNoContent} {
		t.Run(fmt.Sprint("status ", code), func(t *testing.T) {
			t.Parallel()
			env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain")
				w.WriteHeader(code)
				if code != http.StatusNoContent {
					io.WriteString(w, rfcPolicy)
				}
			})
			_, _, err := Fetch(t.Context(), env.cfg, env.domain)
			fe := wantReason(t, err, ReasonHTTPStatus)
			if fe.StatusCode != code || errors.Is(err, ErrNoPolicy) != (code == http.StatusNotFound) {
				t.Fatalf("status %d, ErrNoPolicy %v", fe.StatusCode, errors.Is(err, ErrNoPolicy))
			}
		})
	}

	for _, ct := range []string{"text/html", "application/octet-stream", "", "text/plain/x", "text/plainx"} {
		t.Run("media type "+ct, func(t *testing.T) {
			t.Parallel()
			env := newFetchEnv(t, ca, cert, servePolicy(rfcPolicy, ct))
			_, _, err := Fetch(t.Context(), env.cfg, env.domain)
			wantReason(t, err, ReasonMediaType)
		})
	}

	t.Run("syntax", func(t *testing.T) {
		t.Parallel()
		body := "version: STSv1\nmode: enforce\nmax_age: 86400\n" // no mx
		env := newFetchEnv(t, ca, cert, servePolicy(body, "text/plain"))
		p, got, err := Fetch(t.Context(), env.cfg, env.domain)
		wantReason(t, err, ReasonSyntax)
		if p != nil || string(got) != body || !errors.Is(err, ErrPolicySyntax) || errors.Is(err, ErrPolicyFetch) {
			t.Fatalf("policy %+v, body %q, err %v", p, got, err)
		}
	})

	t.Run("too large with content-length", func(t *testing.T) {
		t.Parallel()
		body := rfcPolicy + "x: " + strings.Repeat("a", MaxPolicySize) + "\n"
		env := newFetchEnv(t, ca, cert, servePolicy(body, "text/plain"))
		_, _, err := Fetch(t.Context(), env.cfg, env.domain)
		wantReason(t, err, ReasonTooLarge)
	})

	t.Run("exactly 64 KiB", func(t *testing.T) {
		t.Parallel()
		body := rfcPolicy + "x: "
		body += strings.Repeat("a", MaxPolicySize-len(body))
		env := newFetchEnv(t, ca, cert, servePolicy(body, "text/plain"))
		if _, got, err := Fetch(t.Context(), env.cfg, env.domain); err != nil || len(got) != MaxPolicySize {
			t.Fatalf("%d bytes: %v", len(got), err)
		}
	})

	t.Run("endless chunked body", func(t *testing.T) {
		t.Parallel()
		// The server writes until the client goes away; Fetch must stop
		// reading after MaxPolicySize+1 bytes and close the connection.
		written := make(chan int64, 1)
		env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, rfcPolicy)
			chunk := []byte(strings.Repeat("x: y\n", 800))
			var n int64
			for {
				m, err := w.Write(chunk)
				n += int64(m)
				if err != nil {
					written <- n
					return
				}
				w.(http.Flusher).Flush()
			}
		})
		cd := &countingDialer{d: env.cfg.Dialer}
		env.cfg.Dialer = cd
		_, _, err := Fetch(t.Context(), env.cfg, env.domain)
		wantReason(t, err, ReasonTooLarge)
		<-written // the server saw the connection go away
		// What the client read off the wire: the bounded body plus TLS
		// records, HTTP headers and chunk framing in flight.
		if n := cd.read.Load(); n > MaxPolicySize+64<<10 {
			t.Fatalf("client read %d bytes", n)
		}
	})
}

func TestFetchTimeout(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	cert := ca.issue(t, testNow.Add(-time.Hour), testNow.Add(time.Hour), "mta-sts.example.test")

	t.Run("trickling body", func(t *testing.T) {
		t.Parallel()
		env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "version: STSv1\n")
			w.(http.Flusher).Flush()
			<-r.Context().Done() // never finish the body
		})
		env.cfg.Timeout = 300 * time.Millisecond
		start := time.Now()
		_, _, err := Fetch(t.Context(), env.cfg, env.domain)
		wantReason(t, err, ReasonTimeout)
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("fetch took %v with a 300ms timeout", d)
		}
	})

	t.Run("no response headers", func(t *testing.T) {
		t.Parallel()
		env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		})
		env.cfg.Timeout = 300 * time.Millisecond
		_, _, err := Fetch(t.Context(), env.cfg, env.domain)
		wantReason(t, err, ReasonTimeout)
	})

	t.Run("silent TLS server", func(t *testing.T) {
		t.Parallel()
		// A TCP listener that accepts and never speaks TLS.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		done := make(chan struct{})
		t.Cleanup(func() { close(done) })
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			<-done
			c.Close()
		}()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		p, _ := strconv.Atoi(port)
		cfg := FetchConfig{RootCAs: ca.pool, Port: p, Timeout: 300 * time.Millisecond,
			Dialer: mapDialer{"mta-sts.example.test:" + port: ln.Addr().String()}}
		_, _, err = Fetch(t.Context(), cfg, "example.test")
		wantReason(t, err, ReasonTimeout)
	})

	t.Run("caller canceled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		env := newFetchEnv(t, ca, cert, func(w http.ResponseWriter, r *http.Request) {
			cancel()
			<-r.Context().Done()
		})
		_, _, err := Fetch(ctx, env.cfg, env.domain)
		wantReason(t, err, ReasonCanceled)
	})
}

func TestFetchConnect(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	// A port nobody listens on: listen, note the address, close.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cfg := FetchConfig{RootCAs: ca.pool, Port: p, Timeout: 5 * time.Second,
		Dialer: mapDialer{"mta-sts.example.test:" + port: addr}}
	_, _, err = Fetch(t.Context(), cfg, "example.test")
	wantReason(t, err, ReasonConnect)

	// The dialer cannot resolve the name.
	_, _, err = Fetch(t.Context(), cfg, "other.test")
	wantReason(t, err, ReasonConnect)

	// Not TLS at all: a plain HTTP server.
	srv := httptest.NewServer(servePolicy(rfcPolicy, "text/plain"))
	t.Cleanup(srv.Close)
	_, port, _ = net.SplitHostPort(srv.Listener.Addr().String())
	p, _ = strconv.Atoi(port)
	cfg = FetchConfig{RootCAs: ca.pool, Port: p, Timeout: 5 * time.Second,
		Dialer: mapDialer{"mta-sts.example.test:" + port: srv.Listener.Addr().String()}}
	_, _, err = Fetch(t.Context(), cfg, "example.test")
	wantReason(t, err, ReasonTLS)

	for _, d := range []string{"", ".", "exa mple.test", "example.test/x", "a..b", "example.test:80", "[::1]"} {
		_, _, err = Fetch(t.Context(), cfg, d)
		wantReason(t, err, ReasonInvalidDomain)
	}
}

func TestCachedPolicyFresh(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := CachedPolicy{Domain: "example.org", RecordID: "20261201", FetchedAt: t0, MaxAge: time.Hour}
	for _, tt := range []struct {
		id   string
		at   time.Time
		want bool
	}{
		{"20261201", t0.Add(time.Hour), true},
		{"", t0.Add(30 * time.Minute), true},
		{"20261201", t0.Add(time.Hour + time.Second), false},
		{"20261202", t0, false},
	} {
		if got := c.Fresh(tt.id, tt.at); got != tt.want {
			t.Errorf("Fresh(%q, %v) = %v", tt.id, tt.at, got)
		}
	}
}
