package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportAuditTrail: every export recipients leaves an entry in the
// database (when, run, verdicts, how many, the operating-system user, the
// output), shown by status (text and --json) and counted in the HTML
// report's methodology.
func TestExportAuditTrail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "t.db")
	scanDemo(t, db)
	out := filepath.Join(dir, "plaintext.csv")
	if code, _, stderr := runCLI(t, "export", "recipients", "--db", db, "--verdict", "plaintext", "--out", out); code != exitOK {
		t.Fatalf("export: exit %d: %s", code, stderr)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	written := int64(strings.Count(string(data), "\n") - 1)
	code, stdout, stderr := runCLI(t, "export", "recipients", "--db", db, "--verdict", "partial,broken")
	if code != exitOK {
		t.Fatalf("export to stdout: exit %d: %s", code, stderr)
	}
	toStdout := int64(strings.Count(stdout, "\n") - 1)

	code, stdout, stderr = runCLI(t, "status", "--db", db, "--json")
	if code != statusFresh {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	var rep struct {
		Exports []struct {
			Run        int64    `json:"run"`
			Kind       string   `json:"kind"`
			Verdicts   []string `json:"verdicts"`
			Recipients *int64   `json:"recipients"`
			OSUser     string   `json:"os_user"`
			Host       string   `json:"host"`
			Output     string   `json:"output"`
			At         string   `json:"at"`
		} `json:"exports"`
		Total int64 `json:"exports_total"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if rep.Total != 2 || len(rep.Exports) != 2 {
		t.Fatalf("status --json: %d exports (%d listed), want 2:\n%s", rep.Total, len(rep.Exports), stdout)
	}
	host, _ := os.Hostname()
	last, first := rep.Exports[0], rep.Exports[1] // newest first
	if first.Run != 1 || first.Kind != "recipients" || strings.Join(first.Verdicts, ",") != "plaintext" || first.Recipients == nil ||
		*first.Recipients != written || written == 0 || first.Output != out || first.OSUser != osUser() || first.OSUser == "" ||
		first.Host != host || first.At == "" {
		t.Errorf("the file export's entry: %+v (wrote %d)", first, written)
	}
	if strings.Join(last.Verdicts, ",") != "partial,broken" || last.Output != "-" || last.Recipients == nil || *last.Recipients != toStdout {
		t.Errorf("the stdout export's entry: %+v (wrote %d)", last, toStdout)
	}
	_, stdout, _ = runCLI(t, "status", "--db", db)
	if !strings.Contains(stdout, "exports:   2 recipient exports recorded") || !strings.Contains(stdout, "run 1  plaintext  ") ||
		!strings.Contains(stdout, "by "+osUser()+" on "+host+"  to "+out) {
		t.Errorf("status:\n%s", stdout)
	}

	html := filepath.Join(dir, "r.html")
	if code, _, stderr := runCLI(t, "report", "--db", db, "--out", html); code != exitOK {
		t.Fatalf("report: exit %d: %s", code, stderr)
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `id="exports-audit">Recipient lists exported from this database`) ||
		!strings.Contains(string(page), "see tlsready status): 2 · the last ") {
		i := strings.Index(string(page), "exports-audit")
		t.Errorf("report methodology: %q", string(page)[max(0, i-20):min(len(page), i+300)])
	}
}
