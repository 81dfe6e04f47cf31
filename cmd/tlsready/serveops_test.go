package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestServeTokenFileMode: a token file group or others may read is refused
// with what to do.
func TestServeTokenFileMode(t *testing.T) {
	t.Parallel()
	db := fixtureDB(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		tok := filepath.Join(t.TempDir(), "token")
		writeFile(t, tok, "0123456789abcdef-token\n")
		if err := os.Chmod(tok, mode); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runCLI(t, "serve", "--db", db, "--http", "0.0.0.0:0", "--socketmap", "", "--token-file", tok)
		if code != exitUsage || !strings.Contains(stderr, "chmod 600") || strings.Contains(stderr, "0123456789abcdef") {
			t.Errorf("token file mode %04o: exit %d, %q; want %d saying chmod 600", mode, code, stderr, exitUsage)
		}
	}
}

// TestServeOpsListener: with a token, /healthz and /metrics answer on
// --ops-listen without it while the API still requires it; a wrong method
// is 405 with Allow.
func TestServeOpsListener(t *testing.T) {
	t.Parallel()
	db := fixtureDB(t)
	tok := filepath.Join(t.TempDir(), "token")
	const token = "0123456789abcdef-token"
	writeFile(t, tok, token+"\n")
	s := startServeInProcess(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "", "--ops-listen", "127.0.0.1:0", "--token-file", tok)
	addrs := map[string]string{}
	re := regexp.MustCompile(`msg=listening protocol=(\w+) addr=(\S+)`)
	for len(addrs) < 2 {
		m := s.next(t, re)
		addrs[m[1]] = "http://" + m[2]
	}
	get := func(method, url, token string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	if code, _, _ := get("GET", addrs["http"]+"/metrics", ""); code != 401 {
		t.Errorf("API /metrics without the token: %d, want 401", code)
	}
	if code, _, body := get("GET", addrs["ops"]+"/metrics", ""); code != 200 || !strings.Contains(body, "tlsready_gateway_answers_total") {
		t.Errorf("ops /metrics without the token: %d", code)
	}
	if code, _, _ := get("GET", addrs["ops"]+"/healthz", ""); code != 200 && code != 503 {
		t.Errorf("ops /healthz without the token: %d", code)
	}
	if code, _, _ := get("GET", addrs["ops"]+"/v1/domains/plain.example", ""); code != 404 {
		t.Errorf("ops serves lookups: %d", code)
	}
	if code, hdr, _ := get("POST", addrs["http"]+"/v1/domains/plain.example", token); code != 405 || hdr.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /v1/domains: %d, Allow %q; want 405, GET, HEAD", code, hdr.Get("Allow"))
	}
	if code, _, body := get("GET", addrs["http"]+"/v1/domains/plain.example", token); code != 200 || !strings.Contains(body, `"plaintext"`) {
		t.Errorf("lookup with the token: %d %s", code, body)
	}
}
