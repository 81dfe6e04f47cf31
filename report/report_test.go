package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/tlsready/tlsready/report/reporttest"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/report")

var fixedNow = time.Date(2025, 2, 11, 9, 0, 0, 0, time.UTC)

// fixture builds the fixture database once per test binary (read-only use).
var fixture = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "tlsready-report-fixture-")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "fixture.db")
	return path, reporttest.Build(context.Background(), path, true)
})

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if p, err := fixture(); err == nil && p != "" {
		os.RemoveAll(filepath.Dir(p))
	}
	os.Exit(code)
}

// openStore opens the database at path for the rest of the test.
func openStore(t testing.TB, path string, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// openBenchDB opens, read-only, a new database of n generated domains
// (buildBenchDB) with 2n citizens.
func openBenchDB(t *testing.T, n int) *store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bench.db")
	if err := buildBenchDB(t.Context(), path, n, 2*n, t.Logf); err != nil {
		t.Fatal(err)
	}
	return openStore(t, path, store.Options{ReadOnly: true})
}

func openFixture(t testing.TB) *store.Store {
	t.Helper()
	path, err := fixture()
	if err != nil {
		t.Fatal(err)
	}
	return openStore(t, path, store.Options{ReadOnly: true})
}

func loadFixture(t *testing.T, runID int64, opts LoadOptions) *Model {
	t.Helper()
	opts.Now = func() time.Time { return fixedNow }
	m, err := Load(t.Context(), openFixture(t), runID, opts)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("..", "testdata", "report", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./report -update rewrites it)\n--- got ---\n%s", name, got)
	}
}

func TestGoldenTable(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{})
	for _, lang := range Languages {
		var b bytes.Buffer
		if err := RenderTable(&b, m, lang); err != nil {
			t.Fatal(err)
		}
		golden(t, "table-"+lang+".txt", b.Bytes())
		for i, line := range strings.Split(b.String(), "\n") {
			if w := displayWidth(line); w > 80 {
				t.Errorf("%s line %d is %d columns wide: %q", lang, i+1, w, line)
			}
		}
	}
}

// displayWidth counts East Asian wide runes as two columns.
func displayWidth(s string) int {
	w := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && (r <= 0x115f || (r >= 0x2e80 && r <= 0xa4cf) || (r >= 0xac00 && r <= 0xd7a3) ||
			(r >= 0xf900 && r <= 0xfaff) || (r >= 0xfe30 && r <= 0xfe4f) || (r >= 0xff00 && r <= 0xff60) || (r >= 0xffe0 && r <= 0xffe6)):
			w += 2
		default:
			w++
		}
	}
	return w
}

func TestGoldenCSVJSON(t *testing.T) {
	t.Parallel()
	st := openFixture(t)
	var c, j bytes.Buffer
	if err := WriteCSV(t.Context(), st, 0, &c); err != nil {
		t.Fatal(err)
	}
	golden(t, "domains.csv", c.Bytes())
	if err := WriteJSON(t.Context(), st, 0, &j); err != nil {
		t.Fatal(err)
	}
	golden(t, "domains.json", j.Bytes())

	var doc struct {
		Format  string          `json:"format"`
		Run     store.Run       `json:"run"`
		Total   Count           `json:"total"`
		Domains []DomainRecord  `json:"domains"`
		Extra   json.RawMessage `json:"what_if"`
	}
	if err := json.Unmarshal(j.Bytes(), &doc); err != nil {
		t.Fatalf("JSON export does not parse: %v", err)
	}
	if doc.Format != JSONFormat || doc.Run.ID != 2 || int64(len(doc.Domains)) != doc.Total.Domains {
		t.Errorf("JSON: format %q run %d, %d domains for total %d", doc.Format, doc.Run.ID, len(doc.Domains), doc.Total.Domains)
	}
	// The CSV has one row per domain plus the header, and defuses formulas.
	lines := strings.Split(strings.TrimSpace(c.String()), "\n")
	if int64(len(lines)-1) != doc.Total.Domains {
		t.Errorf("CSV has %d rows, want %d", len(lines)-1, doc.Total.Domains)
	}
	if strings.Contains(c.String(), `,=HYPERLINK`) || !strings.Contains(c.String(), `'=HYPERLINK`) {
		t.Error("CSV cell starting with = is not defused")
	}
	if strings.Contains(c.String(), reporttest.IDPrefix) || strings.Contains(c.String(), reporttest.AddrPrefix) {
		t.Error("CSV export contains recipient ids or addresses")
	}
}

func TestLoadNumbers(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{TopN: 5})
	if m.Run.ID != 2 {
		t.Fatalf("latest finished run = %d, want 2", m.Run.ID)
	}
	want := map[result.Verdict]Count{
		result.Verified: {Citizens: 41, Domains: 2}, result.Plaintext: {Citizens: 31, Domains: 3},
		result.Partial: {Citizens: 12, Domains: 1}, result.DANE: {Citizens: 8, Domains: 1},
		result.MTASTS: {Citizens: 6, Domains: 1}, result.Encrypted: {Citizens: 5, Domains: 1},
		result.Broken: {Citizens: 3, Domains: 1}, result.NoMail: {Citizens: 2, Domains: 1},
		result.DNSError: {Citizens: 1, Domains: 1},
	}
	for _, vc := range m.Verdicts {
		if vc.Count != want[vc.Verdict] {
			t.Errorf("%s: %+v, want %+v", vc.Verdict, vc.Count, want[vc.Verdict])
		}
	}
	if m.Total != (Count{Citizens: 109, Domains: 12}) {
		t.Errorf("total %+v", m.Total)
	}
	if len(m.Top) != 5 || m.Top[0].Domain != "big-provider.example" || m.Top[0].Result == nil {
		t.Errorf("top: %+v", m.Top)
	}
	if m.Tail.Total != (Count{Citizens: 109 - 40 - 25 - 12 - 8 - 6, Domains: 7}) {
		t.Errorf("tail %+v", m.Tail.Total)
	}
	w := m.WhatIf
	if w.PlaintextToday != 31 || w.PlaintextMaybe != 12 || w.BounceTLS != 31 || w.BounceVerifiedMore != 5 || w.SafeActive != 14 || w.BrokenBounce != 3 {
		t.Errorf("what-if %+v", w)
	}
	for _, o := range w.Outcomes {
		sum := o.Protected + o.Encrypted + o.Plaintext + o.Partial + o.Bounced + o.BrokenPolicy + o.NoMail + o.Unknown
		if sum != m.Total.Citizens {
			t.Errorf("%s: outcomes add up to %d, want %d", o.Scenario, sum, m.Total.Citizens)
		}
	}
	c := m.Changes
	if c == nil {
		t.Fatal("no changes against run 1")
	}
	if c.Better != (Count{Citizens: 46, Domains: 2}) || c.Worse != (Count{Citizens: 12, Domains: 1}) ||
		c.NotComparable != (Count{Citizens: 3, Domains: 2}) || c.New != (Count{Citizens: 1, Domains: 1}) ||
		c.Gone != (Count{Citizens: 3, Domains: 1}) || c.Unchanged.Domains != 6 {
		t.Errorf("changes %+v", c)
	}
	if c.PlaintextDelta != 31-32 {
		t.Errorf("plaintext delta %d", c.PlaintextDelta)
	}
	if len(c.TopWorse) != 1 || c.TopWorse[0] != (Change{Domain: "partial.example", From: result.Verified, To: result.Partial, Citizens: 12}) {
		t.Errorf("top worse %+v", c.TopWorse)
	}
	if len(c.TopBetter) != 2 || c.TopBetter[0].Domain != "big-provider.example" || c.TopBetter[1] != (Change{Domain: "sts.example", From: result.Verified, To: result.MTASTS, Citizens: 6}) {
		t.Errorf("top better %+v", c.TopBetter)
	}
	if len(m.Trend) != 2 || m.Trend[0].Run.ID != 1 || m.Trend[1].Total != m.Total {
		t.Errorf("trend %+v", m.Trend)
	}
	if len(m.AtRisk) != 4 || m.AtRisk[0].Domain != "plain.example" {
		t.Errorf("at risk %+v", m.AtRisk)
	}
}

func TestLoadRuns(t *testing.T) {
	t.Parallel()
	st := openFixture(t)
	m, err := Load(t.Context(), st, 1, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Changes != nil || len(m.Trend) != 1 || m.Total.Citizens != 111 {
		t.Errorf("run 1: changes %v, trend %d, citizens %d", m.Changes, len(m.Trend), m.Total.Citizens)
	}
	if _, err := Load(t.Context(), st, 99, LoadOptions{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("run 99: %v, want ErrNotFound", err)
	}
	// An empty database has no finished run; an unfinished run is refused.
	path := filepath.Join(t.TempDir(), "empty.db")
	rw := openStore(t, path, store.Options{})
	if _, err := Load(t.Context(), rw, 0, LoadOptions{}); !errors.Is(err, ErrNoRun) {
		t.Errorf("empty db: %v, want ErrNoRun", err)
	}
	run, _, err := rw.BeginRun(t.Context(), "x", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.Context(), rw, run.ID, LoadOptions{}); !errors.Is(err, ErrRunNotFinished) {
		t.Errorf("running run: %v, want ErrRunNotFinished", err)
	}
}

func renderHTML(t *testing.T, m *Model, lang string) string {
	t.Helper()
	var b bytes.Buffer
	if err := RenderHTML(&b, m, lang); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestHTMLEscapesServerText(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{})
	for _, lang := range Languages {
		page := renderHTML(t, m, lang)
		for _, raw := range []string{reporttest.HostileScript, reporttest.HostileImg, `<script>alert("banner")`, `<b>bold</b>`, "onerror=alert(2)>"} {
			if strings.Contains(page, raw) {
				t.Errorf("%s: unescaped server text %q in the HTML", lang, raw)
			}
		}
		for _, esc := range []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(2)&gt;", "alert(&#34;banner&#34;)"} {
			if !strings.Contains(page, esc) {
				t.Errorf("%s: escaped form %q missing: the hostile fixture is not shown at all", lang, esc)
			}
		}
		// Exactly one script element: ours.
		if n := strings.Count(page, "<script"); n != 1 {
			t.Errorf("%s: %d <script elements, want 1", lang, n)
		}
		if strings.Contains(page, reporttest.IDPrefix) || strings.Contains(page, reporttest.AddrPrefix) {
			t.Errorf("%s: recipient ids or addresses in the HTML", lang)
		}
		checkNoRemote(t, lang, page)
	}
}

// checkNoRemote fails when the page would fetch anything: every URL-valued
// attribute must be a fragment or data: URL, no element that loads a
// document may appear, and the CSP meta tag must forbid fetching.
func checkNoRemote(t *testing.T, lang, page string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(page))
	urlAttrs := map[string]bool{"src": true, "href": true, "action": true, "formaction": true, "data": true,
		"poster": true, "srcset": true, "xlink:href": true, "background": true, "manifest": true, "ping": true}
	cspSeen := false
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			if tt == html.TextToken && (bytes.Contains(z.Text(), []byte("url(")) || bytes.Contains(z.Text(), []byte("@import"))) {
				t.Errorf("%s: url()/@import in the page text or style", lang)
			}
			continue
		}
		tok := z.Token()
		switch tok.Data {
		case "link", "iframe", "object", "embed", "base", "img", "audio", "video", "frame":
			t.Errorf("%s: <%s> element in the report", lang, tok.Data)
		}
		attrs := map[string]string{}
		for _, a := range tok.Attr {
			attrs[a.Key] = a.Val
			if urlAttrs[a.Key] && !(strings.HasPrefix(a.Val, "#") || strings.HasPrefix(a.Val, "data:")) {
				t.Errorf("%s: <%s %s=%q> would load a resource", lang, tok.Data, a.Key, a.Val)
			}
		}
		if tok.Data == "meta" && attrs["http-equiv"] == "Content-Security-Policy" {
			cspSeen = true
			if !strings.HasPrefix(attrs["content"], "default-src 'none';") {
				t.Errorf("%s: CSP %q does not start with default-src 'none'", lang, attrs["content"])
			}
		}
	}
	if !cspSeen {
		t.Errorf("%s: no Content-Security-Policy meta tag", lang)
	}
	if regexp.MustCompile(`(?i)https?://`).MatchString(strings.ReplaceAll(page, "http://evil.test/x", "")) {
		t.Errorf("%s: an http(s) URL in the report", lang)
	}
}

func TestHTMLBounded(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{TopN: 3})
	page := renderHTML(t, m, "en")
	if n := strings.Count(page, `<tr data-verdict=`); n != 3 {
		t.Errorf("%d domain rows, want 3", n)
	}
	for _, id := range []string{`id="tail-domains" data-value="9"`, `id="kpi-citizens" data-value="109"`, `id="wi-safe-active" data-value="14"`,
		`id="ch-worse-citizens" data-value="12"`, `id="v-plaintext-citizens" data-value="31"`, `id="kpi-plaintext-share" data-value="0.2844"`} {
		if !strings.Contains(page, id) {
			t.Errorf("missing %s", id)
		}
	}
	// The Japanese page uses the Japanese catalogue but keeps verdict words.
	ja := renderHTML(t, m, "ja")
	if !strings.Contains(ja, `lang="ja"`) || !strings.Contains(ja, catalogue["ja"]["h_whatif"]) || !strings.Contains(ja, ">plaintext<") {
		t.Error("Japanese page lacks Japanese text or the verdict words")
	}
}

func TestCatalogueComplete(t *testing.T) {
	t.Parallel()
	en, ja := catalogue["en"], catalogue["ja"]
	for k, v := range en {
		if strings.TrimSpace(ja[k]) == "" {
			t.Errorf("ja lacks %q", k)
		}
		if strings.TrimSpace(v) == "" {
			t.Errorf("en %q is empty", k)
		}
	}
	for k := range ja {
		if _, ok := en[k]; !ok {
			t.Errorf("en lacks %q", k)
		}
	}
	var keys []string
	for _, m := range regexp.MustCompile(`T "([a-z_]+)"`).FindAllStringSubmatch(reportTmpl, -1) {
		keys = append(keys, m[1])
	}
	for _, v := range Buckets() {
		keys = append(keys, "vshort_"+string(v), "vlong_"+string(v))
	}
	for _, s := range Scenarios {
		keys = append(keys, "sc_"+string(s), "scdef_"+string(s))
	}
	for _, r := range outcomeRows(WhatIf{}) {
		keys = append(keys, "oc_"+r.Key)
	}
	for _, k := range keys {
		if _, ok := en[k]; !ok {
			t.Errorf("template key %q not in the catalogue", k)
		}
	}
	if Translator("ja")("no-such-key") != "no-such-key" {
		t.Error("missing key does not fall back to the key")
	}
}

func TestDefaultLang(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{}, "en"},
		{map[string]string{"LANG": "ja_JP.UTF-8"}, "ja"},
		{map[string]string{"LANG": "ja_JP.UTF-8", "LC_ALL": "C"}, "en"},
		{map[string]string{"LANG": "en_US.UTF-8", "LC_MESSAGES": "ja_JP"}, "ja"},
		{map[string]string{"LC_ALL": "ja"}, "ja"},
		{map[string]string{"LANG": "C.UTF-8"}, "en"},
	} {
		if got := DefaultLang(func(k string) string { return c.env[k] }); got != c.want {
			t.Errorf("%v: %s, want %s", c.env, got, c.want)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 7: "7", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1234: "-1,234", 10000000: "10,000,000"} {
		if got := formatInt(n); got != want {
			t.Errorf("formatInt(%d) = %q, want %q", n, got, want)
		}
	}
	if got := formatPct(1, 3); got != "33.3%" {
		t.Errorf("formatPct = %q", got)
	}
	if got := formatPct(1, 10000); got != "<0.1%" {
		t.Errorf("formatPct small = %q", got)
	}
	if got := clip("ab\x00cdef", 4); got != "ab�c…" {
		t.Errorf("clip = %q", got)
	}
}

func TestExportRecipients(t *testing.T) {
	t.Parallel()
	st := openFixture(t)
	var b bytes.Buffer
	n, err := ExportRecipients(t.Context(), st, 0, []result.Verdict{result.Plaintext, result.Partial}, &b)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if n != 43 || len(lines) != 44 || lines[0] != "id,domain,verdict,address" {
		t.Fatalf("%d recipients, %d lines, header %q", n, len(lines), lines[0])
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, ",plaintext,") && !strings.Contains(l, ",partial,") {
			t.Errorf("row with another verdict: %q", l)
		}
	}
	// Without kept addresses there is no address column.
	path := filepath.Join(t.TempDir(), "noaddr.db")
	if err := reporttest.Build(t.Context(), path, false); err != nil {
		t.Fatal(err)
	}
	st2 := openStore(t, path, store.Options{ReadOnly: true})
	b.Reset()
	if _, err := ExportRecipients(t.Context(), st2, 0, []result.Verdict{result.Broken}, &b); err != nil {
		t.Fatal(err)
	}
	want := "id,domain,verdict\nrid-secret-broken.example-00,broken.example,broken\nrid-secret-broken.example-01,broken.example,broken\nrid-secret-broken.example-02,broken.example,broken\n"
	if b.String() != want {
		t.Errorf("got %q", b.String())
	}
}

func TestParseVerdictList(t *testing.T) {
	t.Parallel()
	got, err := ParseVerdictList(" plaintext, partial,plaintext")
	if err != nil || len(got) != 2 || got[0] != result.Plaintext || got[1] != result.Partial {
		t.Errorf("got %v %v", got, err)
	}
	for _, bad := range []string{"", ",", "plain", "plaintext,PARTIAL"} {
		if _, err := ParseVerdictList(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseVerdictList(f *testing.F) {
	f.Add("plaintext,partial")
	f.Add(" dane , mta-sts,")
	f.Add("unknown")
	f.Fuzz(func(t *testing.T, s string) {
		vs, err := ParseVerdictList(s)
		if err != nil {
			return
		}
		if len(vs) == 0 {
			t.Fatal("no error and no verdicts")
		}
		for _, v := range vs {
			if !v.Valid() || !strings.Contains(s, string(v)) {
				t.Fatalf("%q gave %q", s, v)
			}
		}
	})
}

func TestTrendAndChangesOverThreeRuns(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "three.db")
	if err := reporttest.Build(ctx, path, false); err != nil {
		t.Fatal(err)
	}
	st := openStore(t, path, store.Options{})
	at := reporttest.Run2Start.AddDate(0, 1, 0)
	run, _, err := st.BeginRun(ctx, "register-3.csv", at)
	if err != nil {
		t.Fatal(err)
	}
	var rs []store.Recipient
	for i := range 25 {
		rs = append(rs, store.Recipient{ID: fmt.Sprintf("p%02d", i), Domain: "plain.example"})
	}
	if err := st.AddRecipients(ctx, run.ID, rs); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveResults(ctx, []result.Result{{Domain: "plain.example", Verdict: result.Verified, ScannedAt: at, RunID: run.ID}}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, run.ID, store.RunStats{}, at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	m, err := Load(ctx, st, 0, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trend) != 3 || m.Trend[0].Total.Citizens != 111 || m.Trend[1].Total.Citizens != 109 || m.Trend[2].Total.Citizens != 25 {
		t.Fatalf("trend %+v", m.Trend)
	}
	if got := m.Trend[0].Verdicts[bucket(result.Plaintext)].Citizens; got != 25+4+3 {
		t.Errorf("run 1 plaintext citizens %d", got)
	}
	c := m.Changes
	if c.Previous.ID != 2 || c.Better != (Count{Citizens: 25, Domains: 1}) || c.Gone != (Count{Citizens: 84, Domains: 11}) ||
		len(c.TopBetter) != 1 || c.TopBetter[0].Domain != "plain.example" {
		t.Errorf("changes %+v", c)
	}
	m, err = Load(ctx, st, 0, LoadOptions{TrendRuns: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trend) != 2 || m.Trend[0].Run.ID != 2 {
		t.Errorf("trend of 2: %+v", m.Trend)
	}
	m, err = Load(ctx, st, 0, LoadOptions{TrendRuns: -1})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trend) != 0 || m.Changes == nil {
		t.Errorf("no trend: %d points, changes %v", len(m.Trend), m.Changes)
	}
	// The page renders without a trend too.
	if page := renderHTML(t, m, "en"); !strings.Contains(page, `id="kpi-citizens" data-value="25"`) {
		t.Error("page without trend lacks the headline")
	}
}

func TestDomainWithoutResult(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openStore(t, filepath.Join(t.TempDir(), "unknown.db"), store.Options{})
	run, _, err := st.BeginRun(ctx, "x", fixedNow)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.AddRecipients(ctx, run.ID, []store.Recipient{{ID: "1", Domain: "a.example"}, {ID: "2", Domain: "b.example"}, {ID: "3", Domain: "b.example"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.SaveResults(ctx, []result.Result{{Domain: "a.example", Verdict: result.Plaintext, ScannedAt: fixedNow}}); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRun(ctx, run.ID, store.RunStats{}, fixedNow); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteCSV(ctx, st, 0, &b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "a.example,,plaintext,1,") || !strings.HasPrefix(lines[2], "b.example,,unknown,2,") {
		t.Errorf("CSV:\n%s", b.String())
	}
	m, err := Load(ctx, st, 0, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Verdict(result.Unknown) != (Count{Citizens: 2, Domains: 1}) || m.WhatIf.Outcome(Opportunistic).Unknown != 2 {
		t.Errorf("unknown bucket %+v, what-if %+v", m.Verdict(result.Unknown), m.WhatIf.Outcome(Opportunistic))
	}
	if page := renderHTML(t, m, "ja"); !strings.Contains(page, `id="v-unknown-domains" data-value="1"`) {
		t.Error("unknown row missing from the HTML")
	}
}

// TestExportOlderRun: the exports of an older run give each domain the
// run's snapshot (verdict, flags, citizens) with the latest stored details,
// in domain order; its recipient list is gone, which is an error.
func TestExportOlderRun(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := openFixture(t)
	snap := map[string]store.RunDomain{}
	var domains []string
	err := st.RunDomains(ctx, 1, func(d store.RunDomain) error {
		snap[d.Domain] = d
		domains = append(domains, d.Domain)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(domains)
	var b bytes.Buffer
	if err := WriteCSV(ctx, st, 1, &b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(domains)+1 {
		t.Fatalf("%d rows for %d domains", len(rows)-1, len(domains))
	}
	for i, row := range rows[1:] {
		d := snap[row[0]]
		if row[0] != domains[i] || row[2] != string(d.Verdict) || row[3] != strconv.FormatInt(d.Citizens, 10) ||
			row[4] != strings.Join(d.Flags, ";") {
			t.Errorf("row %q, snapshot %+v", row, d)
		}
	}
	// partial.example was verified in run 1 (flag no-tlsrpt) and is partial
	// now: the row keeps run 1's verdict and flags, with today's TLS details.
	if i := slices.Index(domains, "partial.example"); rows[i+1][4] != "no-tlsrpt" || rows[i+1][10] != "TLS 1.0" {
		t.Errorf("partial.example in run 1: %q", rows[i+1])
	}

	var j bytes.Buffer
	if err := WriteJSON(ctx, st, 1, &j); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Total   Count          `json:"total"`
		Domains []DomainRecord `json:"domains"`
	}
	if err := json.Unmarshal(j.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Domains) != len(domains) || doc.Total.Domains != int64(len(domains)) || doc.Domains[0].Domain != domains[0] {
		t.Errorf("JSON: %d domains, total %+v", len(doc.Domains), doc.Total)
	}

	b.Reset()
	if _, err := ExportRecipients(ctx, st, 1, nil, &b); !errors.Is(err, store.ErrRecipientsReplaced) || b.Len() != 0 {
		t.Errorf("recipients of run 1: %v, %d bytes written", err, b.Len())
	}
}

// TestExportCancel: a cancelled context stops an export with its error,
// without leaving goroutines blocked (the race detector and -count catch
// leaks as hangs).
func TestExportCancel(t *testing.T) {
	t.Parallel()
	st := openFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := WriteCSV(ctx, st, 0, io.Discard); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteCSV: %v", err)
	}
	// A writer that fails stops the stream too.
	ew := failWriter{}
	if err := WriteJSON(t.Context(), st, 0, ew); !errors.Is(err, errWrite) {
		t.Errorf("WriteJSON: %v", err)
	}
}

var errWrite = errors.New("write failed")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errWrite }

// TestExportManyBatches: an export longer than the batches in flight keeps
// domain order and stops cleanly when the writer fails mid-stream.
func TestExportManyBatches(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const n = 3000 // > (2*GOMAXPROCS+2)*batchRows on small machines
	st := openBenchDB(t, n)
	var b bytes.Buffer
	if err := WriteCSV(ctx, st, 0, &b); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != n+1 {
		t.Fatalf("%d rows", len(rows)-1)
	}
	for i, row := range rows[1:] {
		var mx []string
		for _, h := range benchResult(i, 2, time.Time{}).MX {
			mx = append(mx, h.Name)
		}
		if want := fmt.Sprintf("d%07d.example", i); row[0] != want || row[5] != strings.Join(mx, ";") {
			t.Fatalf("row %d: %q, want domain %s, MX %q", i, row, want, mx)
		}
	}
	fw := &limitWriter{n: 100 << 10}
	if err := WriteJSON(ctx, st, 0, fw); !errors.Is(err, errWrite) {
		t.Errorf("failing writer: %v", err)
	}
}

// limitWriter accepts n bytes, then fails.
type limitWriter struct{ n int }

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		w.n = 0
		return 0, errWrite
	}
	w.n -= len(p)
	return len(p), nil
}
