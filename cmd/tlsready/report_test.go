package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/report/reporttest"
)

// runCmd runs the command line in-process as main does and returns stdout,
// stderr and the exit code.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	code, out, errb := runCLI(t, args...)
	return out, errb, code
}

func fixtureDB(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scan.db")
	if err := reporttest.Build(t.Context(), path, true); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReportCommand(t *testing.T) {
	t.Setenv("LC_ALL", "")
	t.Setenv("LC_MESSAGES", "")
	t.Setenv("LANG", "ja_JP.UTF-8")
	db := fixtureDB(t)
	dir := t.TempDir()

	out, _, code := runCmd(t, "report", "--db", db)
	if code != exitOK || !strings.Contains(out, "送信方針の試算") || !strings.Contains(out, "plaintext") {
		t.Errorf("table (ja from LANG): exit %d\n%s", code, out)
	}
	out, _, code = runCmd(t, "report", "--db", db, "--lang", "en", "--run", "1")
	if code != exitOK || !strings.Contains(out, "Run #1") || !strings.Contains(out, "What if") {
		t.Errorf("table en run 1: exit %d\n%s", code, out)
	}

	html := filepath.Join(dir, "report.html")
	_, errOut, code := runCmd(t, "report", "--db", db, "--format", "html", "--out", html, "--lang", "en")
	if code != exitOK || !strings.Contains(errOut, html) {
		t.Fatalf("html: exit %d %s", code, errOut)
	}
	b, err := os.ReadFile(html)
	if err != nil || !bytes.Contains(b, []byte(`id="kpi-citizens" data-value="109"`)) {
		t.Errorf("html output: %v", err)
	}
	for _, f := range []string{"csv", "json"} {
		out, _, code = runCmd(t, "report", "--db", db, "--format", f)
		if code != exitOK || !strings.Contains(out, "plain.example") {
			t.Errorf("%s: exit %d", f, code)
		}
	}

	for _, args := range [][]string{
		{"report"},
		{"report", "--db", db, "--format", "pdf"},
		{"report", "--db", db, "--lang", "fr"},
		{"report", "--db", filepath.Join(dir, "missing.db")},
		{"export", "recipients", "--db", db, "--verdict", "plain"},
		{"export"},
	} {
		if _, _, code := runCmd(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if _, errOut, code := runCmd(t, "report", "--db", db, "--run", "42"); code != exitUsage || !strings.Contains(errOut, "no run 42 in "+db) {
		t.Errorf("unknown run: exit %d, %q; want %d", code, errOut, exitUsage)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestExportRecipientsCommand(t *testing.T) {
	db := fixtureDB(t)
	out := filepath.Join(t.TempDir(), "outreach.csv")
	if err := os.WriteFile(out, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCmd(t, "export", "recipients", "--db", db, "--verdict", "plaintext,partial", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(out)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if lines[0] != "id,domain,verdict,address" || len(lines) != 44 || !strings.Contains(errOut, "43 recipients") {
		t.Errorf("header %q, %d lines, stderr %q", lines[0], len(lines), errOut)
	}
	stdout, _, code := runCmd(t, "export", "recipients", "--db", db, "--verdict", "no-mail")
	if code != exitOK || strings.Count(stdout, "\n") != 3 || !strings.Contains(stdout, "nomail.example,no-mail") {
		t.Errorf("stdout export: exit %d\n%s", code, stdout)
	}
}

// TestReportFormatFromOut: without --format, --out's extension picks the
// format; --format wins over the extension; an extension that names no
// format is a usage error, not a silent text table.
func TestReportFormatFromOut(t *testing.T) {
	db := fixtureDB(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		out, format string
		want        string // in the file's first 400 bytes
	}{
		{"r.html", "", "<!DOCTYPE html>"},
		{"R.HTM", "", "<!DOCTYPE html>"},
		{"r.csv", "", "domain,domain_unicode,"},
		{"r.json", "", `"tlsready-report/1"`},
		{"r.txt", "", "Run #"},
		{"r.table", "", "Run #"},
		{"r", "", "Run #"},
		{"forced.html", "csv", "domain,domain_unicode,"},
	} {
		path := filepath.Join(dir, tc.out)
		args := []string{"report", "--db", db, "--lang", "en", "--out", path}
		if tc.format != "" {
			args = append(args, "--format", tc.format)
		}
		_, errOut, code := runCmd(t, args...)
		if code != exitOK {
			t.Errorf("%s: exit %d: %s", tc.out, code, errOut)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if head := string(b[:min(len(b), 400)]); !strings.Contains(head, tc.want) {
			t.Errorf("%s (--format %q): file starts %q, want %q in it", tc.out, tc.format, firstLine(b), tc.want)
		}
	}
	_, errOut, code := runCmd(t, "report", "--db", db, "--out", filepath.Join(dir, "r.pdf"))
	if code != exitUsage || !strings.Contains(errOut, "--format") {
		t.Errorf("r.pdf: exit %d, %q; want %d and a hint to pass --format", code, errOut, exitUsage)
	}
	out, _, _ := runCmd(t, "report", "--help")
	if !strings.Contains(out, "default: from --out's extension, else table") {
		t.Errorf("--help does not say the --format default:\n%s", out)
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}
