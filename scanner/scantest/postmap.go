package scantest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Postmap is Postfix's own postmap(1), the client through which the
// gateway's and the CLI's tests ask what Postfix makes of tlsready's
// answers: its socketmap client and the map files it builds and reads
// (texthash, hash, lmdb).
type Postmap struct {
	Path    string // the postmap binary
	ConfDir string // postmap -c: a main.cf with compatibility_level = 3.6
}

// NewPostmap finds postmap and writes it a configuration directory of its
// own. Debian's postfix package installs it in /usr/sbin (.ci/run installs
// the package when missing); without it the test is skipped, and fails
// under CI=true.
func NewPostmap(t testing.TB) *Postmap {
	t.Helper()
	path := "/usr/sbin/postmap"
	if _, err := os.Stat(path); err != nil {
		p, err := exec.LookPath("postmap")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("postmap not found (install Debian's postfix package)")
			}
			t.Skip("postmap not found; install Debian's postfix package to run this test")
		}
		path = p
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), []byte("compatibility_level = 3.6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &Postmap{Path: path, ConfDir: dir}
}

// Run runs postmap -c ConfDir ARGS..., for at most 30 s. Exit status 0 is
// found: the output (a query's value) without its trailing newline and
// true. Exit status 1 without output and without a fatal error is a key
// not found: "" and false. Anything else is an error that holds postmap's
// output.
func (p *Postmap) Run(ctx context.Context, args ...string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, p.Path, append([]string{"-c", p.ConfDir}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return strings.TrimSuffix(stdout.String(), "\n"), true, nil
	case errors.As(err, &ee) && ee.ExitCode() == 1 && stdout.Len() == 0 && !strings.Contains(stderr.String(), "fatal"):
		return "", false, nil
	}
	return "", false, fmt.Errorf("postmap %v: %v\nstdout: %s\nstderr: %s", args, err, stdout.String(), stderr.String())
}

// Query runs postmap -q KEY TABLE: the value and whether it was found. Any
// other outcome fails the test.
func (p *Postmap) Query(t testing.TB, key, table string) (string, bool) {
	t.Helper()
	v, found, err := p.Run(t.Context(), "-q", key, table)
	if err != nil {
		t.Fatal(err)
	}
	return v, found
}

// QuerySocketmap asks Postfix's socketmap client for key in the map named
// mapName of the socketmap server at addr (TABLE
// socketmap:inet:ADDR:MAPNAME).
func (p *Postmap) QuerySocketmap(t testing.TB, addr, mapName, key string) (string, bool) {
	t.Helper()
	return p.Query(t, key, "socketmap:inet:"+addr+":"+mapName)
}
