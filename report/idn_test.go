package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/register"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/scanner/scantest/worlds"
	"github.com/tlsready/tlsready/store"
)

// demoIDNDB stores the demo world's register and verdicts as a scan does:
// recipients and results keyed by the A-label, result.Unicode left empty
// (the scanner never fills it). It returns the database and the demo's IDN
// domains, A-label to the U-label the citizens wrote.
func demoIDNDB(t *testing.T) (*store.Store, map[string]string) {
	t.Helper()
	_, reg, expected, err := worlds.Demo(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	st := openStore(t, filepath.Join(t.TempDir(), "demo.db"), store.Options{KeepLastKnown: time.Nanosecond})
	run, _, err := st.BeginRun(ctx, "register.txt", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	idn := map[string]string{}
	var recips []store.Recipient
	for i, line := range reg {
		_, a, u, reason := register.ParseAddress(line)
		if reason != "" {
			t.Fatalf("demo register line %q: %s", line, reason)
		}
		if u != "" {
			idn[a] = u
		}
		recips = append(recips, store.Recipient{ID: fmt.Sprintf("c%05d", i), Domain: a})
	}
	if len(idn) < 3 {
		t.Fatalf("the demo world has %d IDN domains, want its three Japanese ones: %v", len(idn), idn)
	}
	if err := st.AddRecipients(ctx, run.ID, recips); err != nil {
		t.Fatal(err)
	}
	var results []result.Result
	for d, v := range expected {
		results = append(results, result.Result{Domain: d, Verdict: v, ScannedAt: fixedNow, RunID: run.ID,
			DNSStatus: "ok", Flags: []string{}, MX: []result.Host{{Name: "mx1.bigmail.test", Preference: 10}}})
	}
	if err := st.SaveResults(ctx, results); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, run.ID, store.RunStats{Recipients: int64(len(recips)), Domains: int64(len(results))}, fixedNow.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	return st, idn
}

// TestIDNDemoWorld: the demo's Japanese IDN domains (さくら市.test and the
// others) are shown in Unicode in the HTML report (with the A-label as the
// title and secondary text) and fill domain_unicode in the CSV and JSON
// exports, though the stored results carry only the A-label.
func TestIDNDemoWorld(t *testing.T) {
	t.Parallel()
	st, idn := demoIDNDB(t)
	ctx := t.Context()
	if idn["xn--y8jl1ny40p.test"] != "さくら市.test" {
		t.Fatalf("the demo world lacks さくら市.test: %v", idn)
	}

	m, err := Load(ctx, st, 0, LoadOptions{Now: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, r := range m.Top {
		if r.Unicode != idn[r.Domain] {
			t.Errorf("model: %s has Unicode %q, want %q", r.Domain, r.Unicode, idn[r.Domain])
		}
		if r.Unicode != "" {
			seen++
		}
	}
	if seen != len(idn) {
		t.Errorf("model: %d of %d IDN domains in Unicode", seen, len(idn))
	}
	for _, lang := range Languages {
		page := renderHTML(t, m, lang)
		for a, u := range idn {
			if want := `<span class="idn" title="` + a + `">` + u + `</span><br><span class="note">` + a + `</span>`; !strings.Contains(page, want) {
				t.Errorf("%s HTML: %s not shown as %s", lang, a, want)
			}
		}
	}

	var c bytes.Buffer
	if err := WriteCSV(ctx, st, 0, &c); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&c).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(rows[0], "domain_unicode")
	seen = 0
	for _, row := range rows[1:] {
		if row[col] != idn[row[0]] {
			t.Errorf("CSV: %s has domain_unicode %q, want %q", row[0], row[col], idn[row[0]])
		}
		if row[col] != "" {
			seen++
		}
	}
	if seen != len(idn) {
		t.Errorf("CSV: %d of %d IDN domains with domain_unicode", seen, len(idn))
	}

	var j bytes.Buffer
	if err := WriteJSON(ctx, st, 0, &j); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Domains []DomainRecord `json:"domains"`
	}
	if err := json.Unmarshal(j.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	seen = 0
	for _, d := range doc.Domains {
		if d.DomainUnicode != idn[d.Domain] {
			t.Errorf("JSON: %s has domain_unicode %q, want %q", d.Domain, d.DomainUnicode, idn[d.Domain])
		}
		if d.DomainUnicode != "" {
			seen++
		}
	}
	if seen != len(idn) {
		t.Errorf("JSON: %d of %d IDN domains with domain_unicode", seen, len(idn))
	}
}
