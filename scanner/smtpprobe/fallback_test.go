package smtpprobe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	ztls "github.com/zmap/zcrypto/tls"

	"github.com/tlsready/tlsready/scanner/result"
)

// Servers only the second TLS stack (zcrypto) can negotiate with, and
// servers neither can: each probe costs at most two connections.

// zcryptoCert converts a test certificate for zcrypto's server.
func zcryptoCert(c tls.Certificate) ztls.Certificate {
	return ztls.Certificate{Certificate: c.Certificate, PrivateKey: c.PrivateKey}
}

// ztlsUp completes a zcrypto server handshake and continues over TLS.
func ztlsUp(cfg *ztls.Config) step {
	return func(s *srvSession) error {
		tc := ztls.Server(s.conn, cfg)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("zcrypto server handshake: %w", err)
		}
		s.conn = tc
		s.br = bufio.NewReader(tc)
		return nil
	}
}

// ztlsFails expects the zcrypto server handshake to fail.
func ztlsFails(cfg *ztls.Config) step {
	return func(s *srvSession) error {
		if err := ztls.Server(s.conn, cfg).Handshake(); err == nil {
			return errors.New("zcrypto server handshake succeeded, want failure")
		}
		return nil
	}
}

// answerHello reads the client's first TLS record (its ClientHello) and
// answers with resp, as it is.
func answerHello(resp []byte) step {
	return func(s *srvSession) error {
		var hdr [5]byte
		if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
			return fmt.Errorf("ClientHello header: %w", err)
		}
		if hdr[0] != 22 {
			return fmt.Errorf("record type %d, want handshake", hdr[0])
		}
		if _, err := io.CopyN(io.Discard, s.br, int64(hdr[3])<<8|int64(hdr[4])); err != nil {
			return fmt.Errorf("ClientHello: %w", err)
		}
		_, err := s.conn.Write(resp)
		if isReset(err) {
			return nil
		}
		return err
	}
}

// tlsRecord is one TLS record of type typ (RFC 5246 §6.2.1).
func tlsRecord(typ byte, vers uint16, body []byte) []byte {
	return append([]byte{typ, byte(vers >> 8), byte(vers), byte(len(body) >> 8), byte(len(body))}, body...)
}

// fatalAlert is a fatal alert record (RFC 5246 §7.2) of version vers.
func fatalAlert(vers uint16, desc byte) []byte { return tlsRecord(21, vers, []byte{2, desc}) }

// serverHello is a ServerHello record choosing vers and suite, without
// extensions (RFC 5246 §7.4.1.3).
func serverHello(vers, suite uint16) []byte {
	body := []byte{byte(vers >> 8), byte(vers)}
	for i := range 32 {
		body = append(body, byte(i+1)) // server random (not a downgrade sentinel)
	}
	body = append(body, 0, byte(suite>>8), byte(suite), 0) // no session ID; null compression
	msg := append([]byte{2, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return tlsRecord(22, vers, msg)
}

// tls13Intolerant refuses every ClientHello that offers TLS 1.3, as old
// version-intolerant servers do; the fallback's TLS 1.2 hello gets through.
func tls13Intolerant(cfg *tls.Config) *tls.Config {
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if slices.Contains(h.SupportedVersions, tls.VersionTLS13) {
			return nil, errors.New("version intolerant")
		}
		return nil, nil
	}
	return cfg
}

// wantFallback checks a probe that only the second stack completed.
func wantFallback(t *testing.T, e *probeEnv, p *result.Probe, alert string, version uint16, suite string) {
	t.Helper()
	wantStatus(t, p, result.ProbeOK, true)
	if p.TLS == nil {
		return
	}
	if p.TLS.Stack != result.StackFallback || !p.TLS.Legacy || !p.Retried || p.Alert != alert {
		t.Errorf("stack %q legacy %v retried %v alert %q, want %q", p.TLS.Stack, p.TLS.Legacy, p.Retried, p.Alert, alert)
	}
	if p.TLS.VersionID != version || p.TLS.Version != tls.VersionName(version) {
		t.Errorf("version %q %#x, want %#x", p.TLS.Version, p.TLS.VersionID, version)
	}
	if !strings.Contains(p.TLS.CipherSuite, suite) {
		t.Errorf("cipher suite %q, want one with %q", p.TLS.CipherSuite, suite)
	}
	if n := e.connects.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
	for i := range 2 {
		if got := e.srv.commands(i); len(got) < 2 || got[1] != "STARTTLS" {
			t.Errorf("conn %d commands %q", i, got)
		}
	}
	if got := e.srv.commands(1); !slices.Equal(got, []string{"EHLO tlsready.test", "STARTTLS", "EHLO tlsready.test", "QUIT"}) {
		t.Errorf("fallback connection commands %q", got)
	}
}

// sameCertFacts checks that two stacks reported the same certificate facts.
func sameCertFacts(t *testing.T, got, want *result.TLSInfo) {
	t.Helper()
	if got == nil || want == nil {
		t.Fatalf("TLS %v / %v", got, want)
	}
	g, w := *got, *want
	g.Version, g.VersionID, g.CipherSuite, g.Legacy, g.Stack = "", 0, "", false, ""
	w.Version, w.VersionID, w.CipherSuite, w.Legacy, w.Stack = "", 0, "", false, ""
	if !reflect.DeepEqual(g, w) {
		t.Errorf("certificate facts differ between the stacks:\nzcrypto %+v\ncrypto/tls %+v", g, w)
	}
}

func TestFallbackDHEOnly(t *testing.T) {
	t.Parallel()
	k := pki(t)
	// DHE-RSA needs an RSA certificate.
	rsaCert := k.inter.issue(t, leafOpts{names: []string{"mx.example.test"}, key: k.rsaKey}, k.inter)
	dheOnly := &ztls.Config{
		Certificates: []ztls.Certificate{zcryptoCert(rsaCert)},
		MaxVersion:   ztls.VersionTLS12,
		CipherSuites: []uint16{ztls.TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, ztls.TLS_DHE_RSA_WITH_AES_256_CBC_SHA},
	}
	// Go's ClientHello has no DHE suite: handshake_failure; zcrypto's has.
	e := newEnv(t,
		append(upToSTARTTLS(), ztlsFails(dheOnly), drain()),
		[]step{greet, expect("EHLO tlsready.test"), ehloTLS, expect("STARTTLS"), go220,
			ztlsUp(dheOnly), expect("EHLO tlsready.test"), ehloDone, bye()})
	p := e.run(t, context.Background())
	wantFallback(t, e, p, "handshake_failure", tls.VersionTLS12, "TLS_DHE_RSA_WITH_")
	if p.TLS != nil && p.TLS.CipherSuite != "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" {
		t.Errorf("cipher suite %q", p.TLS.CipherSuite)
	}
	if !NameMatch(p, "mx.example.test") {
		t.Error("NameMatch false")
	}
	if c, err := Leaf(p); err != nil || !c.Equal(rsaCert.Leaf) {
		t.Errorf("Leaf: %v", err)
	}

	// The certificate facts are those crypto/tls reports for the same chain.
	g := newEnv(t, mta(serverTLS(rsaCert)))
	q := g.run(t, context.Background())
	wantStatus(t, q, result.ProbeOK, true)
	sameCertFacts(t, p.TLS, q.TLS)
	if q.TLS.Stack != "" || q.TLS.Legacy {
		t.Errorf("crypto/tls probe: stack %q legacy %v", q.TLS.Stack, q.TLS.Legacy)
	}
}

// An RSA-key-exchange-only TLS 1.2 server and a TLS 1.0-only server that
// also refuse ClientHellos offering TLS 1.3: crypto/tls is turned away, the
// fallback completes. (Without the intolerance crypto/tls completes them on
// the first connection: TestProbeTLSVersions.)
func TestFallbackOldServers(t *testing.T) {
	t.Parallel()
	k := pki(t)
	rsaCert := k.inter.issue(t, leafOpts{names: []string{"mx.example.test"}, key: k.rsaKey}, k.inter)
	tests := []struct {
		name    string
		server  *tls.Config
		version uint16
		suite   string
	}{
		{"rsa-kx-only-tls1.2", &tls.Config{Certificates: []tls.Certificate{rsaCert}, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_CBC_SHA}},
			tls.VersionTLS12, "TLS_RSA_WITH_AES_"},
		{"tls1.0-only", &tls.Config{Certificates: []tls.Certificate{k.mx}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10},
			tls.VersionTLS10, "_CBC_SHA"},
		{"tls1.0-only-rsa-kx-3des", &tls.Config{Certificates: []tls.Certificate{rsaCert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}},
			tls.VersionTLS10, "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := tls13Intolerant(tt.server)
			e := newEnv(t, append(upToSTARTTLS(), tlsFails(srv), drain()), mta(srv))
			p := e.run(t, context.Background())
			wantFallback(t, e, p, "internal_error", tt.version, tt.suite)
			if p.TLS != nil && (!p.TLS.ChainTrusted || p.TLS.Expired || !NameMatch(p, "mx.example.test")) {
				t.Errorf("chain trusted %v expired %v", p.TLS.ChainTrusted, p.TLS.Expired)
			}
		})
	}
}

// Servers that refuse or break off both stacks' handshakes stay
// tls-handshake-failed; servers whose choice neither stack can process are
// not judged (and never plaintext).
func TestFallbackFailures(t *testing.T) {
	t.Parallel()
	const (
		handshakeFailure = 40
		decodeError      = 50
	)
	tests := []struct {
		name   string
		answer []byte // to each ClientHello
		status result.ProbeStatus
		alert  string // from the first attempt
		errHas string // in Error, from the second
	}{
		{"handshake-failure-to-every-hello", fatalAlert(tls.VersionTLS10, handshakeFailure),
			result.ProbeHandshakeFailed, "handshake_failure", "(retry: TLS handshake: server sent alert handshake_failure)"},
		{"protocol-version-to-every-hello", fatalAlert(tls.VersionTLS10, 70),
			result.ProbeHandshakeFailed, "protocol_version", "(retry: TLS handshake: server sent alert protocol_version)"},
		{"closes-on-every-hello", nil,
			result.ProbeHandshakeFailed, "", "(retry: TLS handshake: connection closed)"},
		// SSL 3.0 only: OpenSSL at default settings does not speak it.
		{"ssl3-only", serverHello(0x0300, 0x002F),
			result.ProbeHandshakeFailed, "", "(retry: TLS handshake: "},
		// AES-CCM: OpenSSL implements it, neither Go nor zcrypto does.
		{"chooses-aes-ccm", serverHello(tls.VersionTLS12, 0xC0AC),
			result.ProbeNotJudged, "", "(retry: TLS handshake: "},
		// After accepting the offer the server says our message was
		// malformed: that points at our stack, not at the server.
		{"decode-error-after-server-hello", append(serverHello(tls.VersionTLS12, 0x002F), fatalAlert(tls.VersionTLS12, decodeError)...),
			result.ProbeNotJudged, "decode_error", "(retry: TLS handshake: server sent alert decode_error)"},
		// ... but a handshake_failure after the ServerHello is a refusal.
		{"handshake-failure-after-server-hello", append(serverHello(tls.VersionTLS12, 0x002F), fatalAlert(tls.VersionTLS12, handshakeFailure)...),
			result.ProbeHandshakeFailed, "handshake_failure", "(retry: TLS handshake: server sent alert handshake_failure)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			script := append(upToSTARTTLS(), answerHello(tt.answer), swallow())
			if tt.answer == nil {
				script = append(upToSTARTTLS(), answerHello(nil)) // then close
			}
			e := newEnv(t, script)
			p := e.run(t, context.Background())
			t.Logf("Error: %s", p.Error)
			wantStatus(t, p, tt.status, true)
			if p.Alert != tt.alert || !p.Retried || e.connects.Load() != 2 {
				t.Errorf("alert %q retried %v connects %d", p.Alert, p.Retried, e.connects.Load())
			}
			if !strings.HasPrefix(p.Error, "TLS handshake: ") || !strings.Contains(p.Error, tt.errHas) {
				t.Errorf("Error %q, want it to contain %q", p.Error, tt.errHas)
			}
			if !p.STARTTLSOffered || p.TLS != nil {
				t.Errorf("offered %v TLS %v", p.STARTTLSOffered, p.TLS)
			}
		})
	}
}

// A second connection that never gets to its handshake leaves the first
// stack's failure unjudged: Go failing alone does not mean an OpenSSL-based
// sender fails.
func TestFallbackConnectionLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t,
		append(upToSTARTTLS(), answerHello(fatalAlert(tls.VersionTLS10, 40)), swallow()),
		[]step{say("421 4.3.2 too many connections"), bye()})
	p := e.run(t, context.Background())
	wantStatus(t, p, result.ProbeNotJudged, true)
	if p.Alert != "handshake_failure" || !p.Retried || e.connects.Load() != 2 || p.BannerCode != 220 {
		t.Errorf("alert %q retried %v connects %d banner %d", p.Alert, p.Retried, e.connects.Load(), p.BannerCode)
	}
	if want := "TLS handshake: server sent alert handshake_failure (retry: banner refused)"; p.Error != want {
		t.Errorf("Error %q, want %q", p.Error, want)
	}
}

// The ClientHello of the second stack: OpenSSL's TLS 1.0-1.2 offer, DHE
// included, without TLS 1.3 or any key share.
func TestFallbackClientHello(t *testing.T) {
	t.Parallel()
	k := pki(t)
	hellos := make(chan *tls.ClientHelloInfo, 1)
	srv := &tls.Config{Certificates: []tls.Certificate{k.mx}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		hellos <- h
		return nil, nil
	}}
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	go func() { _ = tls.Server(s, srv).Handshake() }()
	_ = c.SetDeadline(time.Now().Add(srvTimeout))
	tc, err := fallbackHandshake(c, "mx.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if tc.version != tls.VersionTLS12 || !strings.HasPrefix(tc.suite, "TLS_ECDHE_ECDSA_WITH_") {
		t.Errorf("version %#x suite %q", tc.version, tc.suite)
	}
	h := <-hellos
	if h.ServerName != "mx.example.test" {
		t.Errorf("SNI %q", h.ServerName)
	}
	if slices.Contains(h.SupportedVersions, tls.VersionTLS13) || slices.Contains(h.SupportedCurves, tls.X25519MLKEM768) {
		t.Errorf("versions %x curves %v", h.SupportedVersions, h.SupportedCurves)
	}
	for _, id := range []uint16{0x009E, 0x009F, 0x0033, 0x0039, 0x002F, 0x009C, 0x000A, 0xC02B, 0xC02F} {
		if !slices.Contains(h.CipherSuites, id) {
			t.Errorf("suite %#04x not offered", id)
		}
	}
	if i, j := slices.Index(h.CipherSuites, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA), slices.Index(h.CipherSuites, tls.TLS_RSA_WITH_AES_128_CBC_SHA); i < j {
		t.Error("3DES is not a last resort")
	}
}

// A real OpenSSL server that speaks only DHE-RSA, behind a Go SMTP front
// that does the dialogue up to the 220 to STARTTLS and then passes bytes
// through: the handshakes are crypto/tls and zcrypto against OpenSSL.
func TestFallbackOpenSSLDHEOnly(t *testing.T) {
	t.Parallel()
	// @SECLEVEL=1 for the 1024-bit test key.
	e, p := probeOpenSSL(t, "-cipher", "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-SHA:@SECLEVEL=1")
	wantStatus(t, p, result.ProbeOK, true)
	if p.TLS == nil {
		return
	}
	if p.TLS.Stack != result.StackFallback || !p.Retried || p.Alert != "handshake_failure" || e.connects.Load() != 2 {
		t.Errorf("stack %q retried %v alert %q connects %d", p.TLS.Stack, p.Retried, p.Alert, e.connects.Load())
	}
	if p.TLS.CipherSuite != "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384" || p.TLS.VersionID != tls.VersionTLS12 {
		t.Errorf("%s %s", p.TLS.Version, p.TLS.CipherSuite)
	}
	if !p.TLS.ChainTrusted || !NameMatch(p, "mx.example.test") {
		t.Errorf("chain trusted %v, error %q", p.TLS.ChainTrusted, p.TLS.ChainError)
	}
}

// A real OpenSSL server that can sign its key exchange only with SHA-1 (old
// servers): Go 1.25+ refuses SHA-1 signatures in TLS 1.2, OpenSSL-based
// senders at their default settings still complete it; the fallback does,
// with no process-wide GODEBUG (tlssha1) changing what the probe observes.
func TestFallbackOpenSSLSHA1Only(t *testing.T) {
	t.Parallel()
	e, p := probeOpenSSL(t, "-sigalgs", "RSA+SHA1", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0")
	wantStatus(t, p, result.ProbeOK, true)
	if p.TLS == nil {
		return
	}
	if p.TLS.Stack != result.StackFallback || e.connects.Load() != 2 {
		t.Errorf("stack %q connects %d, want the fallback on the second connection", p.TLS.Stack, e.connects.Load())
	}
	if p.TLS.CipherSuite != "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" || !p.TLS.ChainTrusted {
		t.Errorf("%s, chain trusted %v (%s)", p.TLS.CipherSuite, p.TLS.ChainTrusted, p.TLS.ChainError)
	}
}

// probeOpenSSL probes an `openssl s_server -tls1_2` with the given extra
// arguments behind the Go SMTP front, for mx.example.test.
func probeOpenSSL(t *testing.T, args ...string) (*probeEnv, *result.Probe) {
	t.Helper()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("openssl is needed under CI")
		}
		t.Skip("no openssl")
	}
	k := pki(t)
	rsaCert := k.inter.issue(t, leafOpts{names: []string{"mx.example.test"}, key: k.rsaKey}, k.inter)
	dir := t.TempDir()
	certPEM := func(der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}) }
	key, err := x509.MarshalPKCS8PrivateKey(k.rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, chainFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, certPEM(rsaCert.Certificate[0]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chainFile, certPEM(rsaCert.Certificate[1]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	// -rev answers each line reversed: the EHLO after the handshake gets a
	// malformed reply at once.
	cmd := exec.Command(openssl, append([]string{"s_server", "-accept", "127.0.0.1:0", "-naccept", "2", "-rev",
		"-cert", certFile, "-cert_chain", chainFile, "-key", keyFile, "-tls1_2"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "ACCEPT "); ok {
				addr <- a
			}
		}
		close(addr)
	}()
	var backend string
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatal("openssl s_server exited")
		}
		backend = a
	case <-time.After(srvTimeout):
		t.Fatal("openssl s_server did not start")
	}

	// passThrough hands the connection to OpenSSL after the 220 to STARTTLS.
	passThrough := func(s *srvSession) error {
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return err
		}
		defer b.Close()
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(b, s.br) // client to OpenSSL
			_ = b.(*net.TCPConn).CloseWrite()
			close(done)
		}()
		_, _ = io.Copy(s.conn, b) // OpenSSL to client
		s.conn.Close()
		<-done
		return nil
	}
	e := newEnv(t, append(upToSTARTTLS(), passThrough))
	return e, e.run(t, context.Background())
}
