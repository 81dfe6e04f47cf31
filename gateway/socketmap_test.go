package gateway

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// smClient is a minimal socketmap client for the tests.
type smClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialSocketmap(t *testing.T, addr string) *smClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &smClient{t: t, c: c, r: bufio.NewReader(c)}
}

func (s *smClient) send(raw string) {
	s.t.Helper()
	if _, err := io.WriteString(s.c, raw); err != nil {
		s.t.Fatal(err)
	}
}

func (s *smClient) reply() (string, error) {
	p, err := readNetstring(s.r, 100000, nil)
	return string(p), err
}

// try is query for goroutines: no t.Fatal.
func (s *smClient) try(key string) (string, error) {
	if _, err := s.c.Write(appendNetstring(nil, MapName, " ", key)); err != nil {
		return "", err
	}
	return s.reply()
}

func (s *smClient) query(key string) string {
	s.t.Helper()
	s.send(string(appendNetstring(nil, MapName, " ", key)))
	r, err := s.reply()
	if err != nil {
		s.t.Fatalf("query %q: %v", key, err)
	}
	return r
}

func startSocketmap(t *testing.T, cfg Config) (string, *Server) {
	t.Helper()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s, _ := newTestServer(t, st, cfg)
	return serve(t, s.ServeSocketmap), s
}

func wantReply(policy string) string {
	if policy == "" {
		return "NOTFOUND "
	}
	return "OK " + policy
}

func TestSocketmapPolicies(t *testing.T) {
	t.Parallel()
	addr, _ := startSocketmap(t, Config{})
	c := dialSocketmap(t, addr)
	// All requests pipelined in one write, on one persistent connection.
	var req []byte
	for _, vd := range verdictDomains {
		req = appendNetstring(req, MapName, " ", vd.domain)
	}
	c.send(string(req))
	for _, vd := range verdictDomains {
		got, err := c.reply()
		if err != nil || got != wantReply(vd.policy) {
			t.Errorf("%s: %q, %v; want %q", vd.domain, got, err, wantReply(vd.policy))
		}
	}
	for key, want := range map[string]string{
		"DANE.example.test.":     "OK dane-only",
		"bücher.example":         "OK encrypt",
		"unknown.example.test":   "NOTFOUND ",
		"[192.0.2.1]:25":         "NOTFOUND ",
		"[mx.dane.example.test]": "NOTFOUND ",
		".example.test":          "NOTFOUND ",
		"":                       "NOTFOUND ",
		"bad_name.example":       "NOTFOUND ",
	} {
		if got := c.query(key); got != want {
			t.Errorf("%q: %q, want %q", key, got, want)
		}
	}
	// Unknown map names and requests without a key are permanent errors, but
	// the stream is intact and the connection stays usable.
	for _, raw := range []string{"othermap dane.example.test", "tlspolicy", " dane.example.test"} {
		c.send(string(appendNetstring(nil, raw)))
		if got, err := c.reply(); err != nil || !strings.HasPrefix(got, "PERM ") {
			t.Errorf("%q: %q, %v", raw, got, err)
		}
	}
	if got := c.query("dane.example.test"); got != "OK dane-only" {
		t.Errorf("after PERM: %q", got)
	}
}

func TestSocketmapPolicyFlags(t *testing.T) {
	t.Parallel()
	addr, _ := startSocketmap(t, Config{VerifiedPolicy: "may", EncryptedPolicy: "may"})
	c := dialSocketmap(t, addr)
	for key, want := range map[string]string{
		"verified.example.test":  "OK may",
		"encrypted.example.test": "OK may",
		"dane.example.test":      "OK dane-only",
	} {
		if got := c.query(key); got != want {
			t.Errorf("%s: %q, want %q", key, got, want)
		}
	}
}

func TestSocketmapMalformed(t *testing.T) {
	t.Parallel()
	addr, _ := startSocketmap(t, Config{})
	for _, raw := range []string{"abc", "99999:", "03:abc,", "5:hello;", ":x,"} {
		c := dialSocketmap(t, addr)
		c.send(raw)
		got, err := c.reply()
		if err != nil || !strings.HasPrefix(got, "PERM ") {
			t.Errorf("%q: %q, %v", raw, got, err)
		}
		// The stream cannot be resynchronised: the server closes it.
		if _, err := c.reply(); !errors.Is(err, io.EOF) {
			t.Errorf("%q: after PERM: %v, want EOF", raw, err)
		}
	}
}

func TestSocketmapBeforeLoadAndIdle(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s, err := New(Config{Store: st, IdleTimeout: 50 * time.Millisecond, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.ServeSocketmap)
	c := dialSocketmap(t, addr)
	// Before the first cache load: answered from the store.
	for key, want := range map[string]string{"dane.example.test": "OK dane-only", "stale.example.test": "NOTFOUND ", "nope.example.test": "NOTFOUND "} {
		if got := c.query(key); got != want {
			t.Errorf("%s before load: %q, want %q", key, got, want)
		}
	}
	// A store that cannot answer before any data was loaded: NOTFOUND, so
	// Postfix applies its default level instead of deferring all mail
	// (README: "Starting without the database").
	st.Close()
	if got := c.query("dane.example.test"); got != "NOTFOUND " {
		t.Errorf("store closed: %q", got)
	}
	// An idle connection is closed after IdleTimeout (the client's own
	// deadline of 10 s would fail the test instead).
	if _, err := c.reply(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: %v, want EOF", err)
	}
}

func TestSocketmapShutdownClosesConnections(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	fillVerdicts(t, st, testNow)
	s, _ := newTestServer(t, st, Config{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	errc := make(chan error, 1)
	go func() { errc <- s.ServeSocketmap(ctx, l) }()
	c := dialSocketmap(t, l.Addr().String())
	if got := c.query("dane.example.test"); got != "OK dane-only" {
		t.Fatalf("%q", got)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("ServeSocketmap: %v", err)
	}
	if _, err := c.reply(); !errors.Is(err, io.EOF) {
		t.Errorf("after shutdown: %v, want EOF", err)
	}
}
