package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/store"
)

// TestFullDisk: a scan whose database fills the disk fails with a clear
// error, leaves a database that passes integrity_check, and a rerun with
// room finishes the job without losing what was saved. Needs root to mount
// a small tmpfs; skipped otherwise.
func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	if err := os.Mkdir(small, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", small).Run() })

	world, input, expected := demoWorld(t)
	db := filepath.Join(small, "t.db")
	code, _, stderr := runCLI(t, scanArgs(world, input, db)...)
	if code == 0 {
		t.Fatalf("scan on a full disk succeeded; make the tmpfs smaller")
	}
	t.Logf("scan on a full disk: exit %d: %s", code, lastLine(stderr))
	if !strings.Contains(strings.ToLower(stderr), "full") {
		t.Errorf("the error does not say the disk is full: %s", stderr)
	}
	st, err := store.Open(context.Background(), db, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("reopening after the failure: %v", err)
	}
	if err := st.IntegrityCheck(context.Background()); err != nil {
		t.Errorf("integrity_check after a full disk: %v", err)
	}
	st.Close()

	// Move the database somewhere with room and finish the job.
	big := filepath.Join(dir, "big")
	if err := os.Mkdir(big, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		copyFile(t, db+suffix, filepath.Join(big, "t.db"+suffix))
	}
	db2 := filepath.Join(big, "t.db")
	if code, _, stderr := runCLI(t, scanArgs(world, input, db2)...); code != 0 {
		t.Fatalf("rerun with room: %d %s", code, stderr)
	}
	var domains []string
	for d := range expected {
		domains = append(domains, d)
	}
	got := verdicts(t, db2, domains)
	for d, v := range expected {
		if got[d] != v {
			t.Errorf("%s: %s, want %s", d, got[d], v)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
