package smtpprobe

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// probeEnv is one test's server and probe configuration.
type probeEnv struct {
	srv      *smtpServer
	cfg      Config
	connects atomic.Int32
	waited   int // server sessions already waited for
}

func newEnv(t *testing.T, scripts ...[]step) *probeEnv {
	t.Helper()
	e := &probeEnv{srv: startServer(t, scripts...)}
	e.cfg = Config{
		Port:           e.srv.port,
		HELO:           "tlsready.test",
		ConnectTimeout: 5 * time.Second,
		BannerTimeout:  5 * time.Second,
		CommandTimeout: 5 * time.Second,
		Timeout:        20 * time.Second,
		RootCAs:        pki(t).root.pool(),
		Now:            func() time.Time { return testNow },
		OnConnect:      func() { e.connects.Add(1) },
	}
	return e
}

// run probes the server and waits for its sessions to end (one per connection).
func (e *probeEnv) run(t *testing.T, ctx context.Context) *result.Probe {
	t.Helper()
	p := Probe(ctx, e.cfg, "mx.example.test.", loopback)
	if p == nil {
		t.Fatal("Probe returned nil")
	}
	n := int(e.connects.Load())
	e.srv.wait(t, n-e.waited)
	e.waited = n
	for _, c := range e.srv.allCommands() {
		verb, _, _ := strings.Cut(strings.ToUpper(c), " ")
		if verb == "MAIL" || verb == "RCPT" || verb == "DATA" || strings.HasPrefix(verb, "MAIL") {
			t.Errorf("client sent %q", c)
		}
	}
	if p.IP != loopback || p.SNI != "mx.example.test" || !p.StartedAt.Equal(e.cfg.Now()) {
		t.Errorf("IP, SNI, StartedAt = %v, %q, %v", p.IP, p.SNI, p.StartedAt)
	}
	if p.Duration <= 0 {
		t.Errorf("Duration = %v", p.Duration)
	}
	return p
}

func wantCommands(t *testing.T, e *probeEnv, conn int, want ...string) {
	t.Helper()
	if got := e.srv.commands(conn); !slices.Equal(got, want) {
		t.Errorf("conn %d commands = %q, want %q", conn, got, want)
	}
}

func wantStatus(t *testing.T, p *result.Probe, status result.ProbeStatus, reachable bool) {
	t.Helper()
	if p.Status != status || p.Reachable != reachable {
		t.Errorf("Status, Reachable = %q, %v, want %q, %v (error %q)", p.Status, p.Reachable, status, reachable, p.Error)
	}
	if (status == result.ProbeOK) != (p.Error == "") {
		t.Errorf("Status %q with Error %q", p.Status, p.Error)
	}
	if (status == result.ProbeOK) != (p.TLS != nil) {
		t.Errorf("Status %q with TLS %v", p.Status, p.TLS)
	}
}

func TestProbeHappyTLS13(t *testing.T) {
	t.Parallel()
	k := pki(t)
	e := newEnv(t, mta(serverTLS(k.mx)))
	p := e.run(t, context.Background())
	wantStatus(t, p, result.ProbeOK, true)
	wantCommands(t, e, 0, "EHLO tlsready.test", "STARTTLS", "EHLO tlsready.test", "QUIT")
	if p.Banner != "220 mx.example.test ESMTP test" || p.BannerCode != 220 {
		t.Errorf("Banner = %q %d", p.Banner, p.BannerCode)
	}
	if want := []string{"PIPELINING", "SIZE", "STARTTLS", "8BITMIME"}; !slices.Equal(p.EHLO, want) {
		t.Errorf("EHLO = %q, want %q", p.EHLO, want)
	}
	if !p.STARTTLSOffered || p.STARTTLSReply != "220 2.0.0 Ready to start TLS" {
		t.Errorf("STARTTLS offered %v reply %q", p.STARTTLSOffered, p.STARTTLSReply)
	}
	if p.Retried || p.Alert != "" {
		t.Errorf("Retried %v Alert %q", p.Retried, p.Alert)
	}
	ti := p.TLS
	if ti.Version != "TLS 1.3" || ti.VersionID != tls.VersionTLS13 || !strings.HasPrefix(ti.CipherSuite, "TLS_") || ti.Legacy {
		t.Errorf("TLS = %q %#x %q legacy %v", ti.Version, ti.VersionID, ti.CipherSuite, ti.Legacy)
	}
	if !ti.ChainTrusted || ti.Expired || ti.NotYetValid || ti.SelfSigned || ti.ChainError != "" {
		t.Errorf("chain trusted %v expired %v nyv %v self %v err %q", ti.ChainTrusted, ti.Expired, ti.NotYetValid, ti.SelfSigned, ti.ChainError)
	}
	if len(ti.Certs) != 2 || len(ti.Raw) != 2 {
		t.Fatalf("%d certs, %d raw", len(ti.Certs), len(ti.Raw))
	}
	leaf := k.mx.Leaf
	sum := sha256.Sum256(leaf.Raw)
	c := ti.Certs[0]
	if c.Subject != "CN=mx.example.test" || c.Issuer != "CN=Test Intermediate,O=tlsready test" ||
		!slices.Equal(c.DNSNames, []string{"mx.example.test"}) || !c.NotBefore.Equal(leaf.NotBefore) ||
		!c.NotAfter.Equal(leaf.NotAfter) || c.SHA256 != hex.EncodeToString(sum[:]) || c.KeyType != "ECDSA-P256" {
		t.Errorf("leaf CertInfo = %+v", c)
	}
	if ti.Certs[1].Subject != "CN=Test Intermediate,O=tlsready test" {
		t.Errorf("intermediate subject %q", ti.Certs[1].Subject)
	}
	if !NameMatch(p, "mx.example.test") || !NameMatch(p, "MX.Example.Test.") || NameMatch(p, "other.example.test") {
		t.Error("NameMatch wrong")
	}
	chain, err := Chain(p)
	if err != nil || len(chain) != 2 || !chain[0].Equal(leaf) {
		t.Errorf("Chain = %d certs, %v", len(chain), err)
	}
	if l, err := Leaf(p); err != nil || !l.Equal(leaf) {
		t.Errorf("Leaf: %v", err)
	}
	if got := e.srv.sni; !slices.Equal(got, []string{"mx.example.test"}) {
		t.Errorf("server saw SNI %q", got)
	}
	if e.connects.Load() != 1 {
		t.Errorf("%d connections", e.connects.Load())
	}
}

func TestProbeTLSVersions(t *testing.T) {
	t.Parallel()
	k := pki(t)
	rsaCert := k.inter.issue(t, leafOpts{names: []string{"mx.example.test"}, key: k.rsaKey}, k.inter)
	tests := []struct {
		name   string
		server *tls.Config
		ver    uint16
		suite  string
		key    string
	}{
		// Go 1.26 servers still speak TLS 1.0 when MinVersion is set
		// explicitly (GODEBUG tls10server only changes the default).
		{"tls1.0-only", &tls.Config{Certificates: []tls.Certificate{k.mx}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10},
			tls.VersionTLS10, "", "ECDSA-P256"},
		{"tls1.1-only", &tls.Config{Certificates: []tls.Certificate{k.mx}, MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11},
			tls.VersionTLS11, "", "ECDSA-P256"},
		{"tls1.2", &tls.Config{Certificates: []tls.Certificate{k.mx}, MaxVersion: tls.VersionTLS12},
			tls.VersionTLS12, "", "ECDSA-P256"},
		// Only RSA key exchange: offered on the first attempt, no retry needed.
		{"rsa-kex-only", &tls.Config{Certificates: []tls.Certificate{rsaCert}, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}},
			tls.VersionTLS12, "TLS_RSA_WITH_AES_128_CBC_SHA", "RSA-1024"},
		{"3des-only", &tls.Config{Certificates: []tls.Certificate{rsaCert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}},
			tls.VersionTLS10, "TLS_RSA_WITH_3DES_EDE_CBC_SHA", "RSA-1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, mta(tt.server))
			p := e.run(t, context.Background())
			wantStatus(t, p, result.ProbeOK, true)
			if p.TLS == nil {
				return
			}
			if p.TLS.VersionID != tt.ver || p.TLS.Version != tls.VersionName(tt.ver) {
				t.Errorf("version %q %#x, want %#x", p.TLS.Version, p.TLS.VersionID, tt.ver)
			}
			if tt.suite != "" && p.TLS.CipherSuite != tt.suite {
				t.Errorf("suite %q, want %q", p.TLS.CipherSuite, tt.suite)
			}
			if p.TLS.Certs[0].KeyType != tt.key || !p.TLS.ChainTrusted {
				t.Errorf("key %q trusted %v", p.TLS.Certs[0].KeyType, p.TLS.ChainTrusted)
			}
			if p.Retried || p.TLS.Legacy || e.connects.Load() != 1 {
				t.Errorf("retried %v legacy %v connects %d", p.Retried, p.TLS.Legacy, e.connects.Load())
			}
		})
	}
}

func TestProbeCertificates(t *testing.T) {
	t.Parallel()
	k := pki(t)
	mx := []string{"mx.example.test"}
	type want struct {
		trusted, expired, notYet, self bool
		chainErr                       string
		match                          bool
	}
	tests := []struct {
		name string
		cert tls.Certificate
		want want
	}{
		{"valid", k.mx, want{trusted: true, match: true}},
		{"expired", k.inter.issue(t, leafOpts{names: mx, notBefore: testNow.AddDate(0, 0, -100), notAfter: testNow.AddDate(0, 0, -1)}, k.inter),
			want{trusted: true, expired: true, match: true}},
		{"not-yet-valid", k.inter.issue(t, leafOpts{names: mx, notBefore: testNow.AddDate(0, 0, 1), notAfter: testNow.AddDate(0, 0, 90)}, k.inter),
			want{trusted: true, notYet: true, match: true}},
		{"self-signed", selfSigned(t, leafOpts{names: mx}),
			want{self: true, chainErr: "unknown authority", match: true}},
		{"self-signed-expired", selfSigned(t, leafOpts{names: mx, notBefore: testNow.AddDate(-2, 0, 0), notAfter: testNow.AddDate(-1, 0, 0)}),
			want{self: true, expired: true, chainErr: "unknown authority", match: true}},
		{"wrong-name", k.inter.issue(t, leafOpts{names: []string{"other.example.test"}}, k.inter),
			want{trusted: true}},
		{"untrusted-ca", k.other.issue(t, leafOpts{names: mx}),
			want{chainErr: "unknown authority", match: true}},
		{"missing-intermediate", k.inter.issue(t, leafOpts{names: mx}),
			want{chainErr: "unknown authority", match: true}},
		{"wildcard", k.inter.issue(t, leafOpts{names: []string{"*.example.test"}}, k.inter),
			want{trusted: true, match: true}},
		// Signed with SHA-1 by a trusted intermediate: crypto/x509 refuses
		// it, as OpenSSL 3 does at its default security level (SHA-1
		// signatures are below level 1's 80 bits), whatever GODEBUG says.
		{"sha1-signed", k.inter.issue(t, leafOpts{names: mx, sigAlg: x509.ECDSAWithSHA1}, k.inter),
			want{chainErr: "insecure algorithm ECDSA-SHA1", match: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, mta(serverTLS(tt.cert)))
			p := e.run(t, context.Background())
			wantStatus(t, p, result.ProbeOK, true)
			if p.TLS == nil {
				return
			}
			ti := p.TLS
			got := want{ti.ChainTrusted, ti.Expired, ti.NotYetValid, ti.SelfSigned, ti.ChainError, NameMatch(p, "mx.example.test")}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			// The same judgement through a ChainCache, on a miss and on a hit.
			e.cfg.ChainCache = NewChainCache(0)
			for i := range 2 {
				q := e.run(t, context.Background())
				if !reflect.DeepEqual(q.TLS, p.TLS) {
					t.Errorf("cached probe %d: TLS %+v, want %+v", i, q.TLS, p.TLS)
				}
			}
			if n := e.cfg.ChainCache.Len(); n != 1 {
				t.Errorf("cache holds %d chains", n)
			}
		})
	}
	t.Run("wildcard-depth", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, mta(serverTLS(k.inter.issue(t, leafOpts{names: []string{"*.example.test"}}, k.inter))))
		p := e.run(t, context.Background())
		if !NameMatch(p, "a.example.test") || NameMatch(p, "a.b.example.test") || NameMatch(p, "example.test") {
			t.Error("wildcard must match exactly one label")
		}
	})
}

func TestNameMatchNoTLS(t *testing.T) {
	t.Parallel()
	if NameMatch(nil, "mx.example.test") || NameMatch(&result.Probe{}, "mx.example.test") {
		t.Error("NameMatch without TLS")
	}
	if _, err := Chain(&result.Probe{}); err != ErrNoTLS {
		t.Errorf("Chain: %v", err)
	}
	if _, err := Leaf(nil); err != ErrNoTLS {
		t.Errorf("Leaf: %v", err)
	}
}

func TestProbeDialogue(t *testing.T) {
	t.Parallel()
	k := pki(t)
	tests := []struct {
		name      string
		script    []step
		status    result.ProbeStatus
		reachable bool
		cmds      []string
		check     func(t *testing.T, p *result.Probe)
	}{
		{
			name: "multi-line-banner",
			script: append([]step{say("220-mx.example.test ESMTP first", "220-second line", "220 third line")},
				mta(serverTLS(k.mx))[1:]...),
			status: result.ProbeOK, reachable: true,
			cmds: []string{"EHLO tlsready.test", "STARTTLS", "EHLO tlsready.test", "QUIT"},
			check: func(t *testing.T, p *result.Probe) {
				if p.Banner != "220 mx.example.test ESMTP first" {
					t.Errorf("Banner %q", p.Banner)
				}
			},
		},
		{
			name:   "banner-554",
			script: []step{say("554 5.7.1 No SMTP service here"), bye()},
			status: result.ProbeBannerRefused,
			cmds:   []string{"QUIT"},
			check: func(t *testing.T, p *result.Probe) {
				if p.BannerCode != 554 || p.Banner != "554 5.7.1 No SMTP service here" {
					t.Errorf("banner %d %q", p.BannerCode, p.Banner)
				}
			},
		},
		{
			name:   "banner-421-multiline",
			script: []step{say("421-4.3.2 busy", "421 4.3.2 try later"), bye()},
			status: result.ProbeBannerRefused,
			cmds:   []string{"QUIT"},
		},
		{
			name: "banner-sanitised",
			script: []step{raw("220 mx\x01\xff\xfe " + strings.Repeat("é", 150) + "\r\n"), expect("EHLO"),
				say("250 mx"), bye()},
			status: result.ProbeNoSTARTTLS, reachable: true,
			cmds: []string{"EHLO tlsready.test", "QUIT"},
			check: func(t *testing.T, p *result.Probe) {
				if !strings.HasPrefix(p.Banner, "220 mx??? éé") || len(p.Banner) > maxStoredLen {
					t.Errorf("Banner %q (%d bytes)", p.Banner, len(p.Banner))
				}
			},
		},
		{
			name: "ehlo-rejected-helo-fallback",
			script: []step{greet, expect("EHLO tlsready.test"), say("502 5.5.2 Error: command not recognized"),
				expect("HELO tlsready.test"), say("250 mx.example.test"), bye()},
			status: result.ProbeNoSTARTTLS, reachable: true,
			cmds: []string{"EHLO tlsready.test", "HELO tlsready.test", "QUIT"},
			check: func(t *testing.T, p *result.Probe) {
				if p.EHLO != nil || p.STARTTLSOffered {
					t.Errorf("EHLO %q offered %v", p.EHLO, p.STARTTLSOffered)
				}
			},
		},
		{
			name: "ehlo-and-helo-rejected",
			script: []step{greet, expect("EHLO"), say("500 no"), expect("HELO"),
				say("550 5.7.1 go away"), bye()},
			status: result.ProbeEHLORefused, reachable: false,
			cmds: []string{"EHLO tlsready.test", "HELO tlsready.test", "QUIT"},
		},
		{
			name:   "ehlo-421",
			script: []step{greet, expect("EHLO"), say("421 4.7.0 too many connections"), bye()},
			status: result.ProbeEHLORefused, reachable: false,
			cmds: []string{"EHLO tlsready.test", "QUIT"},
		},
		{
			name: "no-starttls",
			script: []step{greet, expect("EHLO"),
				say("250-mx.example.test STARTTLS", "250-XSTARTTLS", "250-SIZE 100 STARTTLS", "250-X-STARTTLS-NOT", "250 8BITMIME"), bye()},
			status: result.ProbeNoSTARTTLS, reachable: true,
			cmds: []string{"EHLO tlsready.test", "QUIT"},
			check: func(t *testing.T, p *result.Probe) {
				if want := []string{"XSTARTTLS", "SIZE", "X-STARTTLS-NOT", "8BITMIME"}; !slices.Equal(p.EHLO, want) || p.STARTTLSOffered {
					t.Errorf("EHLO %q offered %v", p.EHLO, p.STARTTLSOffered)
				}
			},
		},
		{
			name: "starttls-454",
			script: []step{greet, expect("EHLO"), ehloTLS, expect("STARTTLS"),
				say("454 4.7.0 TLS not available due to local problem"), bye()},
			status: result.ProbeSTARTTLSRefused, reachable: true,
			cmds: []string{"EHLO tlsready.test", "STARTTLS", "QUIT"},
			check: func(t *testing.T, p *result.Probe) {
				if !p.STARTTLSOffered || p.STARTTLSReply != "454 4.7.0 TLS not available due to local problem" {
					t.Errorf("offered %v reply %q", p.STARTTLSOffered, p.STARTTLSReply)
				}
			},
		},
		{
			name:   "closed-after-ehlo",
			script: []step{greet, expect("EHLO"), ehloTLS},
			status: result.ProbeProtocolError, reachable: true,
			cmds: []string{"EHLO tlsready.test"},
			check: func(t *testing.T, p *result.Probe) {
				if !p.STARTTLSOffered || !slices.Contains([]string{"STARTTLS: connection closed", "STARTTLS: connection reset", "STARTTLS: broken pipe"}, p.Error) {
					t.Errorf("offered %v error %q", p.STARTTLSOffered, p.Error)
				}
			},
		},
		{
			// The outcome is known once the handshake completed; what
			// follows is courtesy.
			name:   "closed-after-tls",
			script: append(upToSTARTTLS(), tlsUp(serverTLS(k.mx))),
			status: result.ProbeOK, reachable: true,
		},
		{
			name:   "closed-before-banner",
			script: []step{},
			status: result.ProbeConnectFailed,
		},
		{
			name:   "garbage-banner",
			script: []step{say("SSH-2.0-OpenSSH_9.6"), drain()},
			status: result.ProbeProtocolError,
			cmds:   []string{"QUIT"},
		},
		{
			name:   "endless-reply",
			script: []step{greet, expect("EHLO"), writeForever("250-more")},
			status: result.ProbeProtocolError, reachable: false,
			cmds: []string{"EHLO tlsready.test"},
			check: func(t *testing.T, p *result.Probe) {
				if p.Error != "EHLO: too many reply lines" {
					t.Errorf("Error %q", p.Error)
				}
			},
		},
		{
			name:   "megabyte-banner",
			script: []step{raw("220 " + strings.Repeat("a", 1<<20) + "\r\n"), drain()},
			status: result.ProbeProtocolError,
			check: func(t *testing.T, p *result.Probe) {
				if p.Error != "banner: reply line too long" {
					t.Errorf("Error %q", p.Error)
				}
			},
		},
		{
			name:   "megabyte-ehlo-line",
			script: []step{greet, expect("EHLO"), raw("250-" + strings.Repeat("a", 1<<20) + "\r\n"), drain()},
			status: result.ProbeProtocolError, reachable: false,
			check: func(t *testing.T, p *result.Probe) {
				if p.Error != "EHLO: reply line too long" {
					t.Errorf("Error %q", p.Error)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.script)
			p := e.run(t, context.Background())
			wantStatus(t, p, tt.status, tt.reachable)
			if tt.cmds != nil {
				wantCommands(t, e, 0, tt.cmds...)
			}
			if p.Duration > 3*time.Second {
				t.Errorf("took %v", p.Duration)
			}
			if e.connects.Load() != 1 || p.Retried {
				t.Errorf("connects %d retried %v", e.connects.Load(), p.Retried)
			}
			if tt.check != nil {
				tt.check(t, p)
			}
		})
	}
}

func TestProbeTimeouts(t *testing.T) {
	t.Parallel()
	t.Run("silent-banner", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, []step{drain()})
		e.cfg.BannerTimeout = 200 * time.Millisecond
		p := e.run(t, context.Background())
		wantStatus(t, p, result.ProbeTimeout, false)
		wantCommands(t, e, 0) // no QUIT before a greeting
		if p.Error != "banner: timeout" || p.Duration < 200*time.Millisecond || p.Duration > 2*time.Second {
			t.Errorf("Error %q after %v", p.Error, p.Duration)
		}
	})
	t.Run("slow-drip", func(t *testing.T) {
		t.Parallel()
		// A byte every 20 ms forever: only an absolute deadline ends this.
		e := newEnv(t, []step{drip("220-", 20*time.Millisecond)})
		e.cfg.BannerTimeout = 300 * time.Millisecond
		p := e.run(t, context.Background())
		wantStatus(t, p, result.ProbeTimeout, false)
		if p.Duration < 300*time.Millisecond || p.Duration > 2*time.Second {
			t.Errorf("took %v", p.Duration)
		}
	})
	t.Run("slow-ehlo", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, []step{greet, expect("EHLO"), drain()})
		e.cfg.CommandTimeout = 200 * time.Millisecond
		p := e.run(t, context.Background())
		wantStatus(t, p, result.ProbeTimeout, false)
		wantCommands(t, e, 0, "EHLO tlsready.test", "QUIT")
		if p.Error != "EHLO: timeout" {
			t.Errorf("Error %q", p.Error)
		}
	})
	t.Run("whole-probe", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, []step{drain()})
		e.cfg.Timeout = 300 * time.Millisecond
		p := e.run(t, context.Background())
		wantStatus(t, p, result.ProbeTimeout, false)
		if p.Error != "banner: probe timeout" || p.Duration > 2*time.Second {
			t.Errorf("Error %q after %v", p.Error, p.Duration)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, []step{drain()})
		dialed := make(chan struct{})
		e.cfg.Dialer = notifyDialer{dialed}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { <-dialed; cancel() }()
		p := e.run(t, ctx)
		wantStatus(t, p, result.ProbeTimeout, false)
		if p.Error != "banner: canceled" || p.Duration > 2*time.Second {
			t.Errorf("Error %q after %v", p.Error, p.Duration)
		}
	})
	t.Run("handshake-stall-then-legacy", func(t *testing.T) {
		t.Parallel()
		k := pki(t)
		// The first connection never answers the ClientHello; the second
		// attempt, now on the fallback stack (zcrypto, a small TLS 1.2
		// ClientHello) instead of a conservative crypto/tls one, gets a
		// normal server.
		e := newEnv(t, append(upToSTARTTLS(), swallow()), mta(serverTLS(k.mx)))
		e.cfg.CommandTimeout = 300 * time.Millisecond
		p := e.run(t, context.Background())
		wantStatus(t, p, result.ProbeOK, true)
		if !p.Retried || !p.TLS.Legacy || p.TLS.VersionID != tls.VersionTLS12 || e.connects.Load() != 2 {
			t.Errorf("retried %v legacy %v version %q connects %d", p.Retried, p.TLS.Legacy, p.TLS.Version, e.connects.Load())
		}
		if p.TLS.Stack != result.StackFallback || p.Alert != "" {
			t.Errorf("stack %q alert %q", p.TLS.Stack, p.Alert)
		}
	})
}

func TestProbeConnectRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	var n atomic.Int32
	p := Probe(context.Background(), Config{Port: port, NoLegacyRetry: true, OnConnect: func() { n.Add(1) }}, "mx.example.test", loopback)
	wantStatus(t, p, result.ProbeConnectFailed, false)
	if p.Error != "connect: connection refused" || n.Load() != 1 {
		t.Errorf("Error %q, %d connects", p.Error, n.Load())
	}
}

func TestProbeInvalidConfig(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	p := Probe(context.Background(), Config{HELO: "bad\r\nMAIL FROM:<>", OnConnect: func() { n.Add(1) }}, "mx.example.test", loopback)
	if p.Status != result.ProbeConnectFailed || !strings.HasPrefix(p.Error, "invalid config") || n.Load() != 0 {
		t.Errorf("Status %q Error %q connects %d", p.Status, p.Error, n.Load())
	}
}

func TestProbeHandshakeFailures(t *testing.T) {
	t.Parallel()
	k := pki(t)
	// Refuses ClientHellos offering TLS 1.3 (as old middleboxes and
	// servers did); fine with the second attempt, which since it runs
	// on zcrypto (OpenSSL-like TLS 1.2 offer, no key share) instead of a
	// conservative crypto/tls config also reports TLS.Stack "zcrypto".
	tls13Intolerant := &tls.Config{
		Certificates: []tls.Certificate{k.mx},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if slices.Contains(h.SupportedVersions, tls.VersionTLS13) {
				return nil, errors.New("tls 1.3 intolerant")
			}
			return nil, nil
		},
	}
	// Refuses ClientHellos offering a post-quantum hybrid group (as some
	// middleboxes do with the large ClientHello): the first attempt offers
	// none (classicalCurves), so it completes there, without the fallback.
	pqIntolerant := &tls.Config{
		Certificates: []tls.Certificate{k.mx},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			for _, c := range h.SupportedCurves {
				if c == tls.X25519MLKEM768 || c == tls.SecP256r1MLKEM768 || c == tls.SecP384r1MLKEM1024 {
					return nil, errors.New("pq intolerant")
				}
			}
			return nil, nil
		},
	}
	// No cipher suite usable with its ECDSA certificate: handshake_failure
	// to both stacks, so an OpenSSL-based sender fails too (still
	// tls-handshake-failed; the retry's error is zcrypto's).
	noSuite := &tls.Config{Certificates: []tls.Certificate{k.mx}, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA}}
	garbage := append(upToSTARTTLS(), raw("this is not TLS\r\n"), drain())

	tests := []struct {
		name     string
		scripts  [][]step
		noRetry  bool
		status   result.ProbeStatus
		alert    string
		retried  bool
		legacy   bool
		connects int32
		errStart string
	}{
		{"tls13-intolerant-legacy-retry", [][]step{append(upToSTARTTLS(), tlsFails(tls13Intolerant), drain()), mta(tls13Intolerant)},
			false, result.ProbeOK, "internal_error", true, true, 2, ""},
		{"pq-intolerant-first-attempt", [][]step{mta(pqIntolerant)},
			false, result.ProbeOK, "", false, false, 1, ""},
		// P-256 only: a HelloRetryRequest, still the first attempt.
		{"p256-only-hello-retry", [][]step{mta(&tls.Config{Certificates: []tls.Certificate{k.mx}, CurvePreferences: []tls.CurveID{tls.CurveP256}})},
			false, result.ProbeOK, "", false, false, 1, ""},
		// Hybrid groups only: neither attempt offers one (classicalCurves;
		// the fallback stack has no TLS 1.3), so an OpenSSL 3.5 sender
		// would get through where the scanner says tls-handshake-failed.
		// No MTA is known to be configured so (see classicalCurves).
		{"hybrid-only", [][]step{append(upToSTARTTLS(), tlsFails(&tls.Config{Certificates: []tls.Certificate{k.mx},
			CurvePreferences: []tls.CurveID{tls.X25519MLKEM768}}), drain())},
			false, result.ProbeHandshakeFailed, "handshake_failure", true, false, 2,
			"TLS handshake: server sent alert handshake_failure (retry: TLS handshake: server sent alert handshake_failure)"},
		{"no-common-suite", [][]step{append(upToSTARTTLS(), tlsFails(noSuite), drain())},
			false, result.ProbeHandshakeFailed, "handshake_failure", true, false, 2, "TLS handshake: server sent alert handshake_failure (retry: TLS handshake: server sent alert handshake_failure)"},
		{"garbage-after-220", [][]step{garbage},
			false, result.ProbeHandshakeFailed, "", true, false, 2, "TLS handshake: server did not speak TLS"},
		{"garbage-after-220-no-retry", [][]step{garbage},
			true, result.ProbeHandshakeFailed, "", false, false, 1, "TLS handshake: server did not speak TLS"},
		{"tls13-intolerant-no-retry", [][]step{append(upToSTARTTLS(), tlsFails(tls13Intolerant), drain())},
			true, result.ProbeHandshakeFailed, "internal_error", false, false, 1, "TLS handshake: server sent alert internal_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tt.scripts...)
			e.cfg.NoLegacyRetry = tt.noRetry
			p := e.run(t, context.Background())
			wantStatus(t, p, tt.status, true)
			if p.Alert != tt.alert || p.Retried != tt.retried || e.connects.Load() != tt.connects {
				t.Errorf("alert %q retried %v connects %d", p.Alert, p.Retried, e.connects.Load())
			}
			if (p.TLS != nil && p.TLS.Legacy) != tt.legacy {
				t.Errorf("legacy = %v", !tt.legacy)
			}
			if p.TLS != nil && p.TLS.Stack != map[bool]string{true: result.StackFallback}[tt.legacy] {
				t.Errorf("stack %q", p.TLS.Stack)
			}
			if !strings.HasPrefix(p.Error, tt.errStart) {
				t.Errorf("Error %q, want prefix %q", p.Error, tt.errStart)
			}
			if !p.STARTTLSOffered || p.STARTTLSReply != "220 2.0.0 Ready to start TLS" {
				t.Errorf("offered %v reply %q", p.STARTTLSOffered, p.STARTTLSReply)
			}
			for i := range int(tt.connects) {
				if got := e.srv.commands(i); len(got) < 2 || got[1] != "STARTTLS" {
					t.Errorf("conn %d commands %q", i, got)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{{Port: -1}, {Port: 70000}, {HELO: "a b"}, {HELO: "a\n"}, {Timeout: -1}} {
		if c.Validate() == nil {
			t.Errorf("%+v: valid", c)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
	if err := (Config{HELO: "[192.0.2.1]", Port: 2525}).Validate(); err != nil {
		t.Errorf("literal HELO: %v", err)
	}
}

func TestChainTimeWindow(t *testing.T) {
	t.Parallel()
	k := pki(t)
	exp := k.inter.issue(t, leafOpts{names: []string{"mx.example.test"}, notBefore: testNow.AddDate(-1, 0, 0), notAfter: testNow.AddDate(0, -1, 0)}, k.inter)
	certs := []*x509.Certificate{exp.Leaf, k.inter.cert}
	if got := validTime(certs, testNow); !got.Equal(exp.Leaf.NotAfter) {
		t.Errorf("validTime = %v, want leaf NotAfter", got)
	}
	if got := validTime(certs, testNow.AddDate(0, -6, 0)); !got.Equal(testNow.AddDate(0, -6, 0)) {
		t.Errorf("validTime inside window moved: %v", got)
	}
}

// notifyDialer closes ch once a connection is established.
type notifyDialer struct{ ch chan struct{} }

func (d notifyDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		close(d.ch)
	}
	return c, err
}

func TestChainCacheTime(t *testing.T) {
	t.Parallel()
	k := pki(t)
	e := newEnv(t, mta(serverTLS(k.mx)))
	e.cfg.ChainCache = NewChainCache(0)
	// Remembered while valid, then reused after the leaf expired (60 days
	// after testNow): still trusted, now expired, like an uncached probe.
	if p := e.run(t, context.Background()); p.TLS == nil || p.TLS.Expired {
		t.Fatalf("first probe: %+v", p)
	}
	later := testNow.AddDate(0, 0, 200)
	e.cfg.Now = func() time.Time { return later }
	cached := e.run(t, context.Background())
	e.cfg.ChainCache = nil
	fresh := e.run(t, context.Background())
	if cached.TLS == nil || !cached.TLS.ChainTrusted || !cached.TLS.Expired {
		t.Fatalf("cached: %+v", cached.TLS)
	}
	if !reflect.DeepEqual(cached.TLS, fresh.TLS) {
		t.Errorf("cached %+v\nfresh %+v", cached.TLS, fresh.TLS)
	}
}

func TestChainCacheFull(t *testing.T) {
	t.Parallel()
	k := pki(t)
	c := NewChainCache(1)
	a := judgeChain([]*x509.Certificate{k.mx.Leaf}, nil, testNow)
	c.put(chainKey([]*x509.Certificate{k.mx.Leaf}), a)
	c.put(chainKey([]*x509.Certificate{k.inter.cert}), a)
	if c.Len() != 1 || c.get(chainKey([]*x509.Certificate{k.inter.cert})) != nil {
		t.Errorf("cache over its size: %d", c.Len())
	}
	var nilCache *ChainCache
	nilCache.put([32]byte{}, a)
	if nilCache.get([32]byte{}) != nil {
		t.Error("nil cache returned an entry")
	}
}

func TestProbeNoDial(t *testing.T) {
	t.Parallel()
	var n atomic.Int32
	cfg := Config{OnConnect: func() { n.Add(1) }}
	if p := Probe(context.Background(), cfg, "mx.example.test", netip.Addr{}); p.Status != result.ProbeConnectFailed || p.Error != "invalid IP address" {
		t.Errorf("invalid IP: %q %q", p.Status, p.Error)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p := Probe(ctx, cfg, "mx.example.test", loopback); p.Status != result.ProbeTimeout || p.Error != "connect: canceled" {
		t.Errorf("canceled: %q %q", p.Status, p.Error)
	}
	if n.Load() != 0 {
		t.Errorf("%d connection attempts", n.Load())
	}
}
