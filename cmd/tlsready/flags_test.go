package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFlagNames: -v is --verbose wherever it exists and --version only at
// the top; the probe deadline is --probe-timeout in scan, check and serve
// (--timeout still works, deprecated); check's --quiet says what check
// shows.
func TestFlagNames(t *testing.T) {
	t.Parallel()
	code, out, _ := runCLI(t, "--version")
	if code != exitOK || !strings.Contains(out, version) {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	code, _, stderr := runCLI(t, "-v")
	if code != exitUsage || !strings.Contains(stderr, "-v is --verbose") || !strings.Contains(stderr, "tlsready --version") {
		t.Errorf("-v at the top: exit %d, %q", code, stderr)
	}
	_, out, _ = runCLI(t, "--help")
	if strings.Contains(out, "-v, --version") || !strings.Contains(out, "--version") {
		t.Errorf("top-level help still offers -v for the version:\n%s", out)
	}
	for _, c := range []string{"scan", "check", "serve"} {
		_, out, _ := runCLI(t, c, "--help")
		for _, want := range []string{"-v, --verbose", "--probe-timeout duration", "--log-format string"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q", c, want)
			}
		}
		if regexp.MustCompile(`\s--timeout\s`).MatchString(out) {
			t.Errorf("%s --help still lists --timeout", c)
		}
	}
	_, out, _ = runCLI(t, "check", "--help")
	if !strings.Contains(out, "no progress on stderr") || strings.Contains(out, "final summary") || strings.Contains(out, "progress bar") {
		t.Errorf("check --help: --quiet text is not check's:\n%s", out)
	}

	// The old name still sets the deadline, with a deprecation notice.
	// (cobra prints the notice with OutOrStderr: stderr in the real command.)
	code, out, stderr = runCLI(t, "check", "--timeout", "0s", "--helo", "test.tlsready.invalid", "example.test")
	if code != exitUsage || !strings.Contains(stderr, "--probe-timeout must be at least 1s") || !strings.Contains(out+stderr, "use --probe-timeout") {
		t.Errorf("check --timeout 0s: exit %d, %q %q", code, out, stderr)
	}
	// "max age" is the MTA-STS policy's alone: scan's --max-age is
	// --rescan-after, status's --overdue-after; the old names still work,
	// deprecated and out of --help.
	for _, c := range []struct{ cmd, flag string }{{"scan", "--rescan-after"}, {"status", "--overdue-after"}} {
		_, out, _ := runCLI(t, c.cmd, "--help")
		if !strings.Contains(out, c.flag+" duration") || regexp.MustCompile(`\s--max-age\s`).MatchString(out) {
			t.Errorf("%s --help: want %s and no --max-age:\n%s", c.cmd, c.flag, out)
		}
	}
	code, out, stderr = runCLI(t, "scan", "reg.txt", "--db", "x.db", "--helo", "test.tlsready.invalid", "--max-age", "-1s")
	if code != exitUsage || !strings.Contains(stderr, "--rescan-after must not be negative") || !strings.Contains(out+stderr, "use --rescan-after") {
		t.Errorf("scan --max-age -1s: exit %d, %q %q", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "status", "--db", "x.db", "--max-age", "0s")
	if code != exitUsage || !strings.Contains(stderr, "--overdue-after must be positive") || !strings.Contains(out+stderr, "use --overdue-after") {
		t.Errorf("status --max-age 0s: exit %d, %q %q", code, out, stderr)
	}
	code, _, stderr = runCLI(t, "serve", "--db", "x.db", "--log-format", "xml")
	if code != exitUsage || !strings.Contains(stderr, "--log-format must be text or json") {
		t.Errorf("serve --log-format xml: exit %d, %q", code, stderr)
	}
}

// TestCompletionValues: shell completion offers the values of --format,
// --lang, --verdict (a comma-separated list) and --trust-ad.
func TestCompletionValues(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"report", "--format", ""}, []string{"html", "table", "csv", "json"}},
		{[]string{"report", "--lang", ""}, []string{"ja", "en"}},
		{[]string{"demo", "--lang", ""}, []string{"ja", "en"}},
		{[]string{"scan", "--trust-ad", ""}, []string{"auto", "true", "false"}},
		{[]string{"check", "--trust-ad", ""}, []string{"auto", "true", "false"}},
		{[]string{"serve", "--trust-ad", ""}, []string{"auto", "true", "false"}},
		{[]string{"serve", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"export", "recipients", "--verdict", "plaintext,pa"}, []string{"plaintext,partial"}},
		{[]string{"export", "recipients", "--verdict", ""}, []string{"dane", "plaintext", "dns-error", "unknown"}},
	} {
		code, out, stderr := runCLI(t, append([]string{"__complete"}, tc.args...)...)
		if code != exitOK {
			t.Errorf("%q: exit %d: %s", tc.args, code, stderr)
			continue
		}
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if l != "" && !strings.HasPrefix(l, ":") {
				got = append(got, l)
			}
		}
		for _, w := range tc.want {
			if !contains(got, w) {
				t.Errorf("%q: completions %q lack %q", tc.args, got, w)
			}
		}
		if strings.HasPrefix(tc.args[len(tc.args)-1], "plaintext,") && contains(got, "plaintext,plaintext") {
			t.Errorf("%q: offers a verdict already given: %q", tc.args, got)
		}
	}
}

// serveInProcess runs `tlsready serve` in-process until the test ends (or
// stop is called) and returns its stderr lines as they come.
type serveInProcess struct {
	lines  chan string
	stop   func() error
	cancel context.CancelFunc
}

func startServeInProcess(t *testing.T, args ...string) *serveInProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	root := newRootCmd()
	root.SetArgs(append([]string{"serve"}, args...))
	root.SetOut(io.Discard)
	root.SetErr(pw)
	done := make(chan error, 1)
	go func() {
		err := root.ExecuteContext(ctx)
		pw.Close()
		done <- err
	}()
	s := &serveInProcess{lines: make(chan string, 1000), cancel: cancel}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default:
			}
		}
		close(s.lines)
	}()
	var once bool
	var err error
	s.stop = func() error {
		if !once {
			once = true
			cancel()
			err = <-done
		}
		return err
	}
	t.Cleanup(func() { _ = s.stop() })
	return s
}

// next returns the next stderr line matching re, failing the test after a
// while.
func (s *serveInProcess) next(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("serve ended before a line matching %s", re)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			t.Fatalf("no line matching %s", re)
		}
	}
}

// TestServeLogFormat: serve --log-format json logs JSON objects.
func TestServeLogFormat(t *testing.T) {
	t.Parallel()
	db := fixtureDB(t)
	s := startServeInProcess(t, "--db", db, "--http", "127.0.0.1:0", "--socketmap", "", "--log-format", "json")
	line := s.next(t, regexp.MustCompile(`^\{.*"msg":"listening".*\}$`))[0]
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil || m["protocol"] != "http" || m["level"] != "INFO" {
		t.Errorf("listening line %q: %v", line, err)
	}
	if err := s.stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("serve: %v", err)
	}
}

// TestREADMECompletion: the README says how to install shell completion.
func TestREADMECompletion(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tlsready completion bash", "tlsready completion zsh", "tlsready completion fish", "--probe-timeout"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("README lacks %q", want)
		}
	}
}
