package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest"
)

// filtered is a network whose outbound port 25 is filtered: every SMTP
// connect hangs until its deadline.
type filtered struct{}

func (filtered) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: network, Err: ctx.Err()}
}

// TestPort25BlockedKeepsCache: a run from a network with port 25 filtered
// stops with exit code 4 and a clear message, and overwrites nothing that
// an earlier good run cached.
func TestPort25BlockedKeepsCache(t *testing.T) {
	b := scantest.NewBuilder(nil)
	var lines []string
	var domains []string
	for i := range 60 {
		d := "blocked" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + fmt.Sprintf("%03d", i) + ".test"
		b.MailDomain(d, scantest.SMTPHost{})
		domains = append(domains, d)
		lines = append(lines, "citizen@"+d)
	}
	sc, err := b.Scenario()
	if err != nil {
		t.Fatal(err)
	}
	world := scantest.StartT(t, sc)
	input := filepath.Join(t.TempDir(), "reg.txt")
	writeFile(t, input, strings.Join(lines, "\n")+"\n")
	db := filepath.Join(t.TempDir(), "t.db")
	if code, _, stderr := runCLI(t, scanArgs(world, input, db)...); code != 0 {
		t.Fatalf("good run: %d %s", code, stderr)
	}
	before := verdicts(t, db, domains)
	for d, v := range before {
		if v != result.Verified {
			t.Fatalf("good run: %s is %s", d, v)
		}
	}

	cfg := demoJob(world, input, db, nil)
	cfg.Scanner.Concurrency = 30
	cfg.Scanner.Probe.Timeout = time.Second
	cfg.Scanner.Probe.Dialer = filtered{}
	cfg.Scanner.TempRetry = nil
	_, err = job.Run(context.Background(), cfg)
	if !errors.Is(err, job.ErrNetworkDown) || !errors.Is(err, scanner.ErrPort25Blocked) {
		t.Fatalf("blocked run: %v, want job.ErrNetworkDown for scanner.ErrPort25Blocked", err)
	}
	var ee *exitError
	if !errors.As(jobExit(err), &ee) || ee.code != exitEnvironment {
		t.Fatalf("blocked run: %v, want exit %d", err, exitEnvironment)
	}
	after := verdicts(t, db, domains)
	for d, v := range before {
		if after[d] != v {
			t.Errorf("%s: %s after the blocked run, %s before", d, after[d], v)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
