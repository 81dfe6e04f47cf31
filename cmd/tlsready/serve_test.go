package main

import (
	"bufio"
	"encoding/json"
	"errors"

	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
	"github.com/tlsready/tlsready/store"
)

func TestServeUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	good := filepath.Join(dir, "good")
	os.WriteFile(short, []byte("tooshort\n"), 0o600)
	os.WriteFile(good, []byte("0123456789abcdef-token\n"), 0o600)
	db := filepath.Join(dir, "t.db")
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--db", db, "--http", "", "--socketmap", ""},
		{"serve", "--db", db, "--http", "0.0.0.0:0"},
		{"serve", "--db", db, "--http", ":8461"},
		{"serve", "--db", db, "--socketmap", "192.0.2.1:8462"},
		{"serve", "--db", db, "--http", "example.org:8461"},
		{"serve", "--db", db, "--http", "127.0.0.1"},
		{"serve", "--db", db, "--http", "0.0.0.0:0", "--token-file", short},
		{"serve", "--db", db, "--http", "0.0.0.0:0", "--token-file", filepath.Join(dir, "missing")},
		{"serve", "--db", db, "--verified-policy", "encrypt"},
		{"serve", "--db", db, "--encrypted-policy", "verify"},
		{"serve", "--db", db, "--stale-after", "0s"},
		{"serve", "--db", db, "--max-batch", "0"},
		{"serve", "--db", db, "--live", "--resolver", "no-port"},
		{"serve", "--db", db, "--live", "--smtp-port", "0"},
		{"serve", "--db", db, "extra-arg"},
	} {
		if code, _, stderr := runCLI(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", args, code, exitUsage, stderr)
		}
	}
	// A good token file lets a non-loopback address through the checks, to
	// the missing database: a usage error as from every command (README
	// "Exit codes").
	if code, _, stderr := runCLI(t, "serve", "--db", db, "--http", "0.0.0.0:0", "--socketmap", "", "--token-file", good); code != exitUsage || !strings.Contains(stderr, "no such database") {
		t.Errorf("missing database: exit %d, %q", code, stderr)
	}
}

// serveChild runs `tlsready serve` as a separate process and returns, once
// its cache is loaded, the HTTP and socketmap addresses it listens on.
type serveChild struct {
	cmd      *exec.Cmd
	http, sm string
	rest     chan string // later stderr lines
	exitCode chan int
}

var listeningRE = regexp.MustCompile(`msg=listening protocol=(\w+) addr=(\S+)`)

func startServeChild(t *testing.T, args ...string) *serveChild {
	t.Helper()
	return startServeChildUntil(t, "gateway cache loaded", args...)
}

// startServeChildUntil is startServeChild waiting, besides the listeners,
// for a log line containing ready ("" for none).
func startServeChildUntil(t *testing.T, ready string, args ...string) *serveChild {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(append([]string{"serve", "-v"}, args...))
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "TLSREADY_AS_MAIN="+string(j))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &serveChild{cmd: cmd, rest: make(chan string, 1000), exitCode: make(chan int, 1)}
	t.Cleanup(func() { cmd.Process.Kill() })
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		err := cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			c.exitCode <- 0
		case errors.As(err, &ee):
			c.exitCode <- ee.ExitCode()
		default:
			c.exitCode <- -1
		}
	}()
	timeout := time.After(60 * time.Second)
	for loaded := ready == ""; c.http == "" || c.sm == "" || !loaded; {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited before it was ready (exit %d)", <-c.exitCode)
			}
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				if m[1] == "http" {
					c.http = m[2]
				} else {
					c.sm = m[2]
				}
			}
			if ready != "" && strings.Contains(line, ready) {
				loaded = true
			}
		case <-timeout:
			t.Fatal("serve did not become ready")
		}
	}
	go func() {
		for line := range lines {
			select {
			case c.rest <- line:
			default:
			}
		}
		close(c.rest)
	}()
	return c
}

// expectedPolicy derives, independently of the gateway code, the Postfix
// policy the socketmap must answer for a stored result with the defaults.
func expectedPolicy(r result.Result) string {
	switch r.Verdict {
	case result.DANE:
		return "dane-only"
	case result.MTASTS:
		var pats []string
		for _, p := range r.MTASTS.MX {
			p = strings.TrimSuffix(strings.ToLower(p), ".")
			if strings.HasPrefix(p, "*.") {
				p = p[1:]
			}
			if !contains(pats, p) {
				pats = append(pats, p)
			}
		}
		return "secure match=" + strings.Join(pats, ":") + " servername=hostname"
	case result.Verified:
		return "verify"
	case result.Encrypted:
		return "encrypt"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestServeDemoPostfix: a real scan of the simulated internet fills the
// database, `tlsready serve` runs as its own process, Postfix's postmap asks
// the socketmap about every domain, the HTTP API answers the same verdicts,
// and SIGTERM shuts the server down with exit status 0.
func TestServeDemoPostfix(t *testing.T) {
	pm := scantest.NewPostmap(t)
	db := filepath.Join(t.TempDir(), "t.db")
	_, expected := scanDemo(t, db)
	st, err := store.Open(t.Context(), db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	c := startServeChild(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "127.0.0.1:0")
	keys := []string{"example.test"} // not in the register
	for d := range expected {
		keys = append(keys, d)
	}
	seen := map[string]bool{}
	for _, d := range keys {
		want := ""
		if _, ok := expected[d]; ok {
			r, err := st.Lookup(t.Context(), d)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			if r.Verdict != expected[d] {
				t.Errorf("%s: scanned %s, the demo expects %s", d, r.Verdict, expected[d])
			}
			want = expectedPolicy(r)
		}
		got, found := pm.QuerySocketmap(t, c.sm, "tlspolicy", d)
		if got != want || found != (want != "") {
			t.Errorf("postmap -q %s: %q (found %v), want %q", d, got, found, want)
		}
		if found {
			seen[strings.Fields(got)[0]] = true
		}

		code, body := httpGetBody(t, "http://"+c.http+"/v1/domains/"+d)
		var a struct {
			Verdict result.Verdict `json:"verdict"`
			Policy  string         `json:"policy"`
		}
		if err := json.Unmarshal([]byte(body), &a); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %s", d, code, body)
		}
		if wantV, ok := expected[d]; (ok && a.Verdict != wantV) || (!ok && a.Verdict != result.Unknown) || a.Policy != want {
			t.Errorf("GET %s: %s", d, body)
		}
	}
	for _, p := range []string{"dane-only", "secure", "verify", "encrypt"} {
		if !seen[p] {
			t.Errorf("no demo domain got Postfix policy %s", p)
		}
	}

	// Graceful shutdown: an idle socketmap connection is closed, the process exits 0.
	conn, err := net.Dial("tcp", c.sm)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("idle socketmap connection after SIGTERM: %v, want EOF", err)
	}
	select {
	case code := <-c.exitCode:
		if code != 0 {
			t.Errorf("serve exited %d after SIGTERM, want 0", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit after SIGTERM")
	}
}

func httpGetBody(t *testing.T, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
