package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// refusingResolver starts a DNS server on loopback that answers every query
// REFUSED, as a resolver whose access list leaves us out does.
func refusingResolver(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, NotifyStartedFunc: func() { close(started) },
		Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeRefused)
			_ = w.WriteMsg(m)
		})}
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-errc:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Shutdown()
		if err := <-errc; err != nil {
			t.Errorf("refusing resolver: %v", err)
		}
	})
	return pc.LocalAddr().String()
}

// TestDeadResolver: a resolver that is silent, has nothing listening or
// refuses us stops scan (even of a three-domain register) and check before
// the first domain with exit 4 and a message naming the resolver; the scan
// writes no database.
func TestDeadResolver(t *testing.T) {
	world, _, _ := demoWorld(t)
	input := filepath.Join(t.TempDir(), "reg.txt")
	if err := os.WriteFile(input, []byte("a@bigmail.test\nb@chuo-ward.test\nc@plain.test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { silent.Close() })
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()

	for _, tc := range []struct{ name, addr string }{
		{"silent", silent.LocalAddr().String()},
		{"nothing listening", closedAddr},
		{"refused", refusingResolver(t)},
	} {
		t.Run(tc.name+"/scan", func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "t.db")
			args := scanArgs(world, input, db)
			args[slices.Index(args, "--resolver")+1] = tc.addr
			code, out, stderr := runCLI(t, args...)
			if code != exitEnvironment || !strings.Contains(stderr, "resolver "+tc.addr+" does not answer") {
				t.Errorf("scan: exit %d, want %d naming the resolver\nstdout: %s\nstderr: %s", code, exitEnvironment, out, stderr)
			}
			if _, err := os.Stat(db); err == nil {
				t.Errorf("scan with a dead resolver created the database")
			}
		})
		t.Run(tc.name+"/check", func(t *testing.T) {
			t.Parallel()
			code, out, stderr := runCLI(t, "check", "--resolver", tc.addr, "--helo", "test.tlsready.invalid",
				"--allow-private", "--quiet", "bigmail.test")
			if code != exitEnvironment || strings.Contains(out, "MX lookup failed") || !strings.Contains(stderr, "does not answer") {
				t.Errorf("check: exit %d, want %d\nstdout: %s\nstderr: %s", code, exitEnvironment, out, stderr)
			}
		})
	}
}
