package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/store"
)

// TestFailedScanLeavesNothing: a scan that cannot start (the register does
// not exist, or cannot be read) creates no database, lock file or WAL.
func TestFailedScanLeavesNothing(t *testing.T) {
	world, _, _ := demoWorld(t)
	dir := t.TempDir()
	unreadable := filepath.Join(t.TempDir(), "unreadable.txt")
	if err := os.WriteFile(unreadable, []byte("a@bigmail.test\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	inputs := []string{filepath.Join(dir, "missing.txt")}
	if os.Geteuid() != 0 { // root reads a 0000 file
		inputs = append(inputs, unreadable)
	}
	for _, input := range inputs {
		code, _, stderr := runCLI(t, scanArgs(world, input, filepath.Join(dir, "t.db"))...)
		if code == exitOK || !strings.Contains(stderr, input) {
			t.Errorf("%s: exit %d, %q", filepath.Base(input), code, stderr)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("%s: left %s behind", filepath.Base(input), e.Name())
		}
	}
}

// TestInterruptedRunOfAnotherInput: a scan finding an interrupted run of
// another register (another file, or the same file changed since) says so,
// marks that run abandoned and starts its own.
func TestInterruptedRunOfAnotherInput(t *testing.T) {
	world, demoInput, _ := demoWorld(t)
	demoReg, err := os.ReadFile(demoInput)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		prep func(t *testing.T, input string) string // the interrupted run's input identity
		says string
	}{
		{"changed file", func(t *testing.T, input string) string {
			id, err := job.InputIdentity(input)
			if err != nil {
				t.Fatal(err)
			}
			// The register is updated after the interruption.
			if err := os.WriteFile(input, append(demoReg, "late@bigmail.test\n"...), 0o600); err != nil {
				t.Fatal(err)
			}
			return id
		}, "as it was then"},
		{"other file", func(*testing.T, string) string { return "/srv/register/other.csv|1234|1" }, "/srv/register/other.csv (1234 bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db, input := filepath.Join(dir, "t.db"), filepath.Join(dir, "register.txt")
			if err := os.WriteFile(input, demoReg, 0o600); err != nil {
				t.Fatal(err)
			}
			id := tc.prep(t, input)
			st, err := store.Open(context.Background(), db, store.Options{})
			if err != nil {
				t.Fatal(err)
			}
			old, _, err := st.BeginRun(context.Background(), id, time.Now().Add(-time.Hour))
			st.Close()
			if err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCLI(t, scanArgs(world, input, db)...)
			if code != exitOK {
				t.Fatalf("scan: exit %d: %s", code, stderr)
			}
			if !strings.Contains(stderr, "interrupted run of another input is abandoned") || !strings.Contains(stderr, tc.says) {
				t.Errorf("the scan does not say it abandoned run %d (%q):\n%s", old.ID, tc.says, stderr)
			}
			st, err = store.Open(context.Background(), db, store.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			runs, err := st.Runs(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) != 2 || !runs[0].Abandoned() || runs[1].Status != store.RunFinished {
				t.Errorf("runs after the scan: %+v; want run %d abandoned and a finished run", runs, old.ID)
			}
		})
	}
}
