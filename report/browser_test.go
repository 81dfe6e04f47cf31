package report

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// chromiumPath finds Debian's chromium; in CI (CI=true) it must exist.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("TLSREADY_CHROMIUM"), "/usr/bin/chromium"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium); the browser test must run in CI")
	}
	t.Skip("chromium not installed (/usr/bin/chromium): skipping the real-browser test; install Debian's chromium package to run it")
	return ""
}

type browserRun struct {
	stdout, stderr []byte
	netlog         string // path
}

// runChromium opens a local file headless with networking features that
// phone home disabled, a net log, and console logging on stderr.
func runChromium(t *testing.T, bin, page string, extra ...string) browserRun {
	t.Helper()
	dir := t.TempDir()
	netlog := filepath.Join(dir, "netlog.json")
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--disable-default-apps", "--mute-audio", "--user-data-dir=" + filepath.Join(dir, "profile"),
		"--enable-logging=stderr", "--v=0", "--log-net-log=" + netlog}
	args = append(args, extra...)
	args = append(args, (&url.URL{Scheme: "file", Path: page}).String())
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, tail(errb.String(), 3000))
	}
	return browserRun{stdout: out.Bytes(), stderr: errb.Bytes(), netlog: netlog}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pageRequests returns the URLs the page (not the browser itself) asked
// for, from the net log: URL_REQUEST_START_JOB events whose initiator is an
// origin (browser-internal requests have "not an origin").
func pageRequests(t *testing.T, netlog string) []string {
	t.Helper()
	b, err := os.ReadFile(netlog)
	if err != nil {
		t.Fatal(err)
	}
	// Chromium may leave the events array unterminated when it exits.
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL       string `json:"url"`
				Initiator string `json:"initiator"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(b, &log); err != nil {
		s := strings.TrimRight(string(b), " \n,")
		if err2 := json.Unmarshal([]byte(s+"]}"), &log); err2 != nil {
			t.Fatalf("net log does not parse: %v", err)
		}
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		t.Fatal("net log has no URL_REQUEST_START_JOB event type")
	}
	var urls []string
	for _, e := range log.Events {
		if e.Type == start && e.Params.URL != "" && e.Params.Initiator != "not an origin" {
			urls = append(urls, e.Params.URL)
		}
	}
	return urls
}

func remote(urls []string) []string {
	var out []string
	for _, u := range urls {
		if !strings.HasPrefix(u, "file:") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
			out = append(out, u)
		}
	}
	return out
}

// TestBrowserNetlogDetectsRequests is the control for the check below: a
// page that does load a (loopback) resource must show up in the net log.
func TestBrowserNetlogDetectsRequests(t *testing.T) {
	t.Parallel()
	bin := chromiumPath(t)
	page := filepath.Join(t.TempDir(), "leaky.html")
	if err := os.WriteFile(page, []byte(`<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/leak.png"></body></html>`), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runChromium(t, bin, page, "--dump-dom")
	if got := remote(pageRequests(t, r.netlog)); len(got) == 0 {
		t.Fatal("the net log check did not see the page's request to 127.0.0.1: it cannot detect leaks")
	}
}

// TestBrowserHTMLReport renders the fixture's report, opens it in headless
// Chromium, reads the headline numbers from the rendered DOM and checks them
// against the database, checks that the page made no request and that the
// CSP let our script run, and saves screenshots.
func TestBrowserHTMLReport(t *testing.T) {
	t.Parallel()
	bin := chromiumPath(t)
	st := openFixture(t)
	m := loadFixture(t, 0, LoadOptions{})
	dir := t.TempDir()
	pages := map[string]string{}
	for _, lang := range Languages {
		p := filepath.Join(dir, "report-"+lang+".html")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := RenderHTML(f, m, lang); err != nil {
			t.Fatal(err)
		}
		f.Close()
		pages[lang] = p
	}

	// Expected numbers straight from the database.
	var total Count
	per := map[result.Verdict]*Count{}
	if err := st.RunDomains(t.Context(), m.Run.ID, func(d store.RunDomain) error {
		total.add(d.Citizens)
		if per[d.Verdict] == nil {
			per[d.Verdict] = &Count{}
		}
		per[d.Verdict].add(d.Citizens)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	get := func(v result.Verdict) Count {
		if c := per[v]; c != nil {
			return *c
		}
		return Count{}
	}

	checks := map[string]string{
		"kpi-citizens":            formatInt(total.Citizens),
		"kpi-domains":             formatInt(total.Domains),
		"kpi-plaintext-citizens":  formatInt(get(result.Plaintext).Citizens),
		"kpi-plaintext-share":     formatPct(get(result.Plaintext).Citizens, total.Citizens),
		"kpi-partial-citizens":    formatInt(get(result.Partial).Citizens),
		"wi-bounce-tls":           formatInt(get(result.Plaintext).Citizens),
		"wi-bounce-verified-more": "+" + formatInt(get(result.Encrypted).Citizens),
		"wi-safe-active":          formatInt(get(result.DANE).Citizens + get(result.MTASTS).Citizens),
		"f-count":                 formatInt(int64(len(m.Top))), // written by the script
	}
	for _, v := range result.Verdicts {
		checks["v-"+string(v)+"-citizens"] = formatInt(get(v).Citizens)
		checks["v-"+string(v)+"-domains"] = formatInt(get(v).Domains)
	}

	// One browser run per language: the rendered DOM and a screenshot.
	for _, lang := range Languages {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			shot := filepath.Join(dir, "report-"+lang+".png")
			r := runChromium(t, bin, pages[lang], "--dump-dom", "--screenshot="+shot, "--window-size=1280,2000", "--hide-scrollbars")
			doc, err := html.Parse(bytes.NewReader(r.stdout))
			if err != nil {
				t.Fatal(err)
			}
			ids, body := indexDOM(doc)
			for id, want := range checks {
				n := ids[id]
				if n == nil {
					t.Errorf("no element #%s in the rendered DOM", id)
					continue
				}
				if got := nodeText(n); got != want {
					t.Errorf("#%s shows %q, the database says %q", id, got, want)
				}
			}
			// The fixture's IDN domain is shown in Unicode, the A-label as its title.
			if idn := findAll(doc, func(n *html.Node) bool {
				return hasAttr(n, "class", "idn") && hasAttr(n, "title", "xn--r8jz45g.example")
			}); len(idn) == 0 || nodeText(idn[0]) != "例え.example" {
				t.Errorf("the IDN xn--r8jz45g.example is not shown as 例え.example in the rendered DOM")
			}
			// Who to call: a row per contact, each saying what is wrong and what fixes it.
			if table := ids["contact-table"]; table == nil {
				t.Error("no who-to-call table in the rendered DOM")
			} else {
				rows := findAll(table, func(n *html.Node) bool {
					return n.Data == "tr" && slices.ContainsFunc(n.Attr, func(a html.Attribute) bool { return a.Key == "data-verdict" })
				})
				if len(rows) != len(m.Contacts) {
					t.Errorf("%d who-to-call rows, want %d", len(rows), len(m.Contacts))
				}
				for _, r := range rows {
					wrong := findAll(r, func(n *html.Node) bool { return hasClass(n, "wrong") })
					fixes := findAll(r, func(n *html.Node) bool { return n.Data == "li" })
					if len(wrong) != 1 || nodeText(wrong[0]) == "" || len(fixes) == 0 {
						t.Errorf("who-to-call row %q lacks what is wrong or a fix", nodeText(r))
					}
				}
			}
			if ids["provider-table"] == nil {
				t.Error("no provider table in the rendered DOM")
			}
			// Japanese cards read on their own: no label starts with a particle.
			for _, n := range findAll(doc, func(n *html.Node) bool { return hasClass(n, "lbl") }) {
				if r, _ := utf8.DecodeRuneInString(nodeText(n)); lang == "ja" && strings.ContainsRune(particles, r) {
					t.Errorf("card label starts with a particle: %q", nodeText(n))
				}
			}
			// No expander opens to nothing; the trend has a panel per verdict.
			for _, d := range findAll(doc, func(n *html.Node) bool { return n.Data == "details" }) {
				if len(findAll(d, func(n *html.Node) bool { return n.Data == "table" })) == 0 {
					t.Errorf("an empty expander: %q", nodeText(d))
				}
			}
			withCitizens := 0
			for b := range bucketList {
				if slices.ContainsFunc(m.Trend, func(p TrendPoint) bool { return p.Verdicts[b].Citizens > 0 }) {
					withCitizens++
				}
			}
			if n := len(findAll(doc, func(n *html.Node) bool { return hasClass(n, "trend-panel") })); n != withCitizens {
				t.Errorf("%d trend panels in the rendered DOM, want %d (verdicts with citizens)", n, withCitizens)
			}
			if body == nil || !hasAttr(body, "data-js", "ok") {
				t.Error("the report's script did not run (CSP hash mismatch?)")
			}
			if bytes.Contains(r.stderr, []byte("Content Security Policy")) {
				t.Errorf("CSP violation reported by the browser:\n%s", grepLines(r.stderr, "Content Security Policy"))
			}
			if got := remote(pageRequests(t, r.netlog)); len(got) > 0 {
				t.Errorf("the report made requests: %v", got)
			}
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 10_000 {
				t.Fatalf("screenshot missing or tiny: %v", err)
			}
			if a := os.Getenv("TLSREADY_ARTIFACTS"); a != "" {
				for _, f := range []string{shot, pages[lang]} {
					if err := copyFile(f, filepath.Join(a, filepath.Base(f))); err != nil {
						t.Errorf("artifacts: %v", err)
					}
				}
			}
			t.Logf("screenshot: %s", shot)
		})
	}
}

// indexDOM maps element ids to nodes and finds <body>.
func indexDOM(doc *html.Node) (map[string]*html.Node, *html.Node) {
	ids := map[string]*html.Node{}
	var body *html.Node
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if n.Data == "body" {
				body = n
			}
			for _, a := range n.Attr {
				if a.Key == "id" {
					ids[a.Val] = n
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return ids, body
}

// findAll returns the element nodes under n for which match is true, in
// document order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	if n.Type == html.ElementNode && match(n) {
		out = append(out, n)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		out = append(out, findAll(c, match)...)
	}
	return out
}

func nodeText(n *html.Node) string {
	var b strings.Builder
	var rec func(*html.Node)
	rec = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(n)
	return strings.TrimSpace(b.String())
}

func hasAttr(n *html.Node, key, val string) bool {
	for _, a := range n.Attr {
		if a.Key == key && a.Val == val {
			return true
		}
	}
	return false
}

func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s: %w", dst, err)
	}
	return nil
}
