package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store/pgtest"
)

// socketmapGet asks a socketmap server one tlspolicy question over a new
// connection and returns the reply without its netstring framing.
func socketmapGet(addr, domain string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	q := "tlspolicy " + domain
	if _, err := fmt.Fprintf(c, "%d:%s,", len(q), q); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	n := 0
	if _, err := fmt.Fscanf(br, "%d:", &n); err != nil {
		return "", err
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// awaitSocketmap waits, at most 30 s a node, until every node's socketmap
// answers want for domain; after names the change awaited.
func awaitSocketmap(t *testing.T, nodes []*serveChild, domain, want, after string) {
	t.Helper()
	for _, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			sm, err := socketmapGet(n.sm, domain)
			if err != nil {
				t.Fatalf("socketmap %s: %v", domain, err)
			}
			if sm == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still answers %q for %s 30 s after %s", n.sm, sm, domain, after)
			}
			time.Sleep(100 * time.Millisecond) // a child process: no event to wait on
		}
	}
}

// TestPostgresServeNodesOutage: two serve processes on one PostgreSQL (two
// MTA nodes) answer identically; while PostgreSQL is stopped and started
// again no HTTP or socketmap lookup fails, /healthz stays 200 but says
// "degraded" with the data's age (and /metrics that refreshes fail) until
// a refresh succeeds again, and a change made after the restart reaches
// both, as does a pin set after it.
func TestPostgresServeNodesOutage(t *testing.T) {
	cluster := pgtest.Start(t)
	db := cluster.NewDatabase(t)
	_, expected := scanDemo(t, db)
	nodes := []*serveChild{
		startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0"),
		startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0"),
	}
	// Each node's log, read as it comes (lookups at -v fill the buffer).
	var refreshFailed []chan struct{}
	for _, n := range nodes {
		failed := make(chan struct{})
		refreshFailed = append(refreshFailed, failed)
		go func() {
			for line := range n.rest {
				if failed != nil && strings.Contains(line, "cache refresh failed") {
					close(failed)
					failed = nil
				}
			}
		}()
	}
	domains := slices.Sorted(maps.Keys(expected))
	answers := func() []string {
		t.Helper()
		var out []string
		for _, n := range nodes {
			var b strings.Builder
			for _, d := range domains {
				code, body := httpGetBody(t, "http://"+n.http+"/v1/domains/"+d)
				if code != 200 {
					t.Errorf("GET %s from %s: %d %s", d, n.http, code, body)
				}
				sm, err := socketmapGet(n.sm, d)
				if err != nil || strings.HasPrefix(sm, "TEMP") || strings.HasPrefix(sm, "PERM") {
					t.Errorf("socketmap %s from %s: %q %v", d, n.sm, sm, err)
				}
				fmt.Fprintf(&b, "%s %s | %s\n", d, body, sm)
			}
			out = append(out, b.String())
		}
		return out
	}
	if a := answers(); a[0] != a[1] {
		t.Errorf("the nodes answer differently:\n%s\n%s", a[0], a[1])
	}

	if err := cluster.StopServer(); err != nil {
		t.Fatal(err)
	}
	// Both nodes poll the dead database at least twice meanwhile.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); {
		answers()
	}
	// The nodes did notice the outage, and say so: healthy (200), but
	// degraded, answering from data that ages.
	for i, n := range nodes {
		select {
		case <-refreshFailed[i]:
		case <-time.After(10 * time.Second):
			t.Errorf("%s logged no failed refresh while PostgreSQL was down", n.http)
		}
		code, body := httpGetBody(t, "http://"+n.http+"/healthz")
		var h gateway.Health
		if err := json.Unmarshal([]byte(body), &h); err != nil || code != 200 || h.Status != "degraded" ||
			!h.RefreshFailed || h.RefreshFailures == 0 || h.AgeSeconds < 1 || h.SyncedAt.IsZero() {
			t.Errorf("%s /healthz during the outage: %d %s", n.http, code, body)
		}
		if _, m := httpGetBody(t, "http://"+n.http+"/metrics"); !strings.Contains(m, "\ntlsready_gateway_cache_refresh_failing 1\n") {
			t.Errorf("%s /metrics during the outage: no tlsready_gateway_cache_refresh_failing 1", n.http)
		}
	}
	if err := cluster.StartServer(); err != nil {
		t.Fatal(err)
	}
	// Back to ok once a refresh succeeds.
	for _, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body := httpGetBody(t, "http://"+n.http+"/healthz")
			var h gateway.Health
			if err := json.Unmarshal([]byte(body), &h); err == nil && code == 200 && h.Status == "ok" && !h.RefreshFailed && h.AgeSeconds < 10 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s /healthz 30 s after PostgreSQL restarted: %d %s", n.http, code, body)
			}
			time.Sleep(100 * time.Millisecond) // a child process: no event to wait on
		}
	}
	answers()

	domain := domainNotIn(expected, result.DANE)
	// A tightening: two scans see it (the confirmation rule).
	saveAsDANE(t, db, domain, 2)
	awaitSocketmap(t, nodes, domain, "OK dane-only", "the change")

	// A pin set with the CLI reaches both nodes too, over the scan result.
	if code, _, stderr := runCLI(t, "pin", "set", domain, "may", "--db", db, "--reason", "test"); code != 0 {
		t.Fatalf("pin set: %d %s", code, stderr)
	}
	awaitSocketmap(t, nodes, domain, "OK may", "pin set")
}
