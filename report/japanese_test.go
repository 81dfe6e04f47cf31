package report

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/tlsready/tlsready/scanner/result"
)

// isJapanese reports whether r is a kana or a CJK ideograph (or full-width
// Japanese punctuation).
func isJapanese(r rune) bool {
	return unicode.In(r, unicode.Hiragana, unicode.Katakana, unicode.Han) || (r >= 0x3000 && r <= 0x303f) || (r >= 0xff01 && r <= 0xff60)
}

func hasJapanese(s string) bool { return strings.IndexFunc(s, isJapanese) >= 0 }

// technicalColon matches the ASCII colons that belong to a syntax quoted in
// Japanese text: MTA-STS policy lines ("mode: enforce", "mx: pattern").
var technicalColon = regexp.MustCompile(`\b(mode|mx): `)

// halfWidthPunct returns what is wrong with the punctuation of Japanese
// text s: ASCII parentheses, or an ASCII colon used as Japanese punctuation
// (next to Japanese text, or followed by a space), outside quoted syntax.
// Colons inside addresses and times ("127.0.0.53:53", "07:39") are fine.
func halfWidthPunct(s string) string {
	if !hasJapanese(s) {
		return ""
	}
	s = technicalColon.ReplaceAllString(s, "")
	if i := strings.IndexAny(s, "()"); i >= 0 {
		return "ASCII parenthesis at " + strings.TrimSpace(s[max(0, i-12):min(len(s), i+12)])
	}
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		prev, _ := utf8.DecodeLastRuneInString(s[:i])
		next, _ := utf8.DecodeRuneInString(s[i+1:])
		if isJapanese(prev) || isJapanese(next) || next == ' ' {
			return "ASCII colon at " + strings.TrimSpace(s[max(0, i-12):min(len(s), i+12)])
		}
	}
	return ""
}

// TestJapanesePunctuation: the Japanese catalogue and flag meanings use the
// full-width colon and parentheses.
func TestJapanesePunctuation(t *testing.T) {
	t.Parallel()
	for k, v := range catalogue["ja"] {
		if bad := halfWidthPunct(v); bad != "" {
			t.Errorf("catalogue ja %q: %s", k, bad)
		}
	}
	for k, v := range flagText["ja"] {
		if bad := halfWidthPunct(v); bad != "" {
			t.Errorf("flagText ja %q: %s", k, bad)
		}
	}
	for _, c := range []struct {
		s  string
		ok bool
	}{
		{"未調査：ok", true}, {"127.0.0.53:53（信頼）", true}, {"mode: enforce の有効なポリシー", true},
		{"未調査: ok", false}, {"住民(登録)", false}, {"DNS:サーバー", false}, {"plain (ascii): ok", true},
	} {
		if got := halfWidthPunct(c.s) == ""; got != c.ok {
			t.Errorf("halfWidthPunct(%q) = %q", c.s, halfWidthPunct(c.s))
		}
	}
}

// particles are the Japanese particles and counters a label cannot start
// with: it would read as the tail of a sentence whose head is the number
// printed above it ("0.8%" / "の住民が…").
const particles = "のがをにはでともへや人件"

// TestJapaneseCardLabels: the summary and what-if cards' Japanese labels
// stand alone (no leading particle), in the catalogue and in the page.
func TestJapaneseCardLabels(t *testing.T) {
	t.Parallel()
	for k, v := range catalogue["ja"] {
		if !strings.HasPrefix(k, "kpi_") && !strings.HasPrefix(k, "wi_") {
			continue
		}
		if r, _ := utf8.DecodeRuneInString(v); strings.ContainsRune(particles, r) {
			t.Errorf("card label ja %q starts with %q: %s", k, r, v)
		}
	}
	m := loadFixture(t, 0, LoadOptions{})
	doc, err := html.Parse(strings.NewReader(renderHTML(t, m, "ja")))
	if err != nil {
		t.Fatal(err)
	}
	labels := findAll(doc, func(n *html.Node) bool { return hasClass(n, "lbl") })
	if len(labels) < 9 {
		t.Fatalf("%d card labels in the Japanese page, want the 5 summary and 4 what-if cards", len(labels))
	}
	for _, n := range labels {
		text := nodeText(n)
		if r, _ := utf8.DecodeRuneInString(text); strings.ContainsRune(particles, r) {
			t.Errorf("card label starts with a particle: %q", text)
		}
		if strings.Contains(text, "可能性あり") {
			t.Errorf("card label still says only 可能性あり: %q", text)
		}
	}
	// The partial citizens are said in words, with the number in the sentence.
	ids, _ := indexDOM(doc)
	if n := ids["wi-plaintext-maybe"]; n == nil || !strings.Contains(nodeText(n), "partial のドメインの住民 12 人") {
		t.Errorf("what-if plaintext card does not say who the +12 are")
	}
}

// hasClass reports whether an element has class c.
func hasClass(n *html.Node, c string) bool {
	for _, a := range n.Attr {
		if a.Key == "class" && slices.Contains(strings.Fields(a.Val), c) {
			return true
		}
	}
	return false
}

// TestJapanesePagePunctuation: every Japanese text node of the rendered page
// (catalogue text and the punctuation the template puts around it) uses the
// full-width colon and parentheses.
func TestJapanesePagePunctuation(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{})
	z := html.NewTokenizer(strings.NewReader(renderHTML(t, m, "ja")))
	var stack []string
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		switch tt {
		case html.StartTagToken:
			name, _ := z.TagName()
			stack = append(stack, string(name))
		case html.EndTagToken:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case html.TextToken:
			if len(stack) > 0 && (stack[len(stack)-1] == "style" || stack[len(stack)-1] == "script") {
				continue
			}
			if bad := halfWidthPunct(string(z.Text())); bad != "" {
				t.Errorf("Japanese text %q: %s", strings.TrimSpace(string(z.Text())), bad)
			}
		}
	}
}

// TestNoEmptyExpanders: a domain without MX hosts (no-mail, dns-error) gets
// its reason inline, not a "Show (0 MX)" expander; every expander holds at
// least one MX table.
func TestNoEmptyExpanders(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{})
	for _, lang := range Languages {
		doc, err := html.Parse(strings.NewReader(renderHTML(t, m, lang)))
		if err != nil {
			t.Fatal(err)
		}
		details := findAll(doc, func(n *html.Node) bool { return n.Data == "details" })
		for _, d := range details {
			if len(findAll(d, func(n *html.Node) bool { return n.Data == "table" })) == 0 {
				t.Errorf("%s: an expander with nothing in it: %q", lang, nodeText(d))
			}
		}
		rows := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasAttr(n, "data-domain", "nomail.example") })
		if len(rows) != 1 || len(findAll(rows[0], func(n *html.Node) bool { return n.Data == "details" })) != 0 ||
			!strings.Contains(nodeText(rows[0]), "null MX") {
			t.Errorf("%s: nomail.example does not show its reason inline without an expander", lang)
		}
		if want := 10; len(details) != want { // 12 domains, 2 without MX hosts
			t.Errorf("%s: %d expanders, want %d", lang, len(details), want)
		}
	}
}

// TestFlagSeverityComplete: every flag has a severity, defined once, and the
// reasons table is ordered by severity, then citizens.
func TestFlagSeverityComplete(t *testing.T) {
	t.Parallel()
	flags := result.AllFlags
	for _, f := range flags {
		if _, ok := flagSeverity[f]; !ok {
			t.Errorf("flag %q has no severity in flagSeverity", f)
		}
	}
	for f := range flagSeverity {
		if !slices.Contains(flags, f) {
			t.Errorf("flagSeverity has %q, which is not a Flag* constant", f)
		}
	}
	for f, want := range map[string]Severity{
		result.FlagNoTLSRPT: SeverityInfo, result.FlagNoSTARTTLS: SeverityCritical,
		result.FlagCertSelfSigned: SeverityWarning, result.FlagTLS10: SeverityNotice, "some-future-flag": SeverityNotice,
	} {
		if got := FlagSeverity(f); got != want {
			t.Errorf("FlagSeverity(%s) = %s, want %s", f, got, want)
		}
	}

	m := loadFixture(t, 0, LoadOptions{})
	if len(m.Flags) == 0 || m.Flags[0].Flag != result.FlagNoSTARTTLS {
		t.Fatalf("reasons table starts with %+v, want starttls-not-offered", m.Flags)
	}
	for i := 1; i < len(m.Flags); i++ {
		a, b := m.Flags[i-1], m.Flags[i]
		sa, sb := FlagSeverity(a.Flag), FlagSeverity(b.Flag)
		if sa < sb || (sa == sb && a.Citizens < b.Citizens) {
			t.Errorf("reasons out of order: %s (%s, %d citizens) before %s (%s, %d)", a.Flag, sa, a.Citizens, b.Flag, sb, b.Citizens)
		}
	}
	// no-tlsrpt has the most citizens of the fixture's flags but is last.
	if last := m.Flags[len(m.Flags)-1]; last.Flag != result.FlagNoTLSRPT {
		t.Errorf("reasons table ends with %s, want the informational no-tlsrpt", last.Flag)
	}
	for _, lang := range Languages {
		page := renderHTML(t, m, lang)
		for _, s := range []Severity{SeverityCritical, SeverityWarning, SeverityNotice, SeverityInfo} {
			for _, k := range []string{"sev_", "sevdef_"} {
				if _, ok := catalogue[lang][k+s.String()]; !ok {
					t.Errorf("%s catalogue lacks %s%s", lang, k, s)
				}
			}
		}
		if !strings.Contains(page, `<tr data-severity="critical"><td><span class="sev sev-critical">`) {
			t.Errorf("%s: the reasons table shows no severity", lang)
		}
	}
}

// TestTrendChartCounts: the trend shows each verdict's citizens per run on
// its own scale (not shares stacked to 100%).
func TestTrendChartCounts(t *testing.T) {
	t.Parallel()
	m := loadFixture(t, 0, LoadOptions{})
	c := buildTrendChart(m, Translator("en"), punctFor("en"))
	var got []string
	for _, p := range c.Panels {
		got = append(got, p.Verdict)
		if len(p.Points) != len(m.Trend) {
			t.Errorf("%s: %d points for %d runs", p.Verdict, len(p.Points), len(m.Trend))
		}
		if p.X+p.W > c.Width || p.Y+p.H > c.Height {
			t.Errorf("%s: panel outside the chart", p.Verdict)
		}
	}
	// Every verdict with citizens in run 1 or 2, in Buckets order.
	want := []string{"dane", "mta-sts", "verified", "encrypted", "partial", "plaintext", "broken", "no-mail", "unreachable", "dns-error"}
	if !slices.Equal(got, want) {
		t.Fatalf("panels %v, want %v", got, want)
	}
	plain := c.Panels[slices.Index(got, "plaintext")]
	// Plaintext: 32 citizens in run 1, 31 in run 2; its own scale tops at 32.
	if plain.Max != "32" || plain.Now != "31 (28.4%)" || plain.Points[0].Y != plain.Top || plain.Points[1].Y <= plain.Top || plain.Points[1].Y >= plain.Base {
		t.Errorf("plaintext panel %+v", plain)
	}
	// Partial: none in run 1, 12 in run 2.
	partial := c.Panels[slices.Index(got, "partial")]
	if partial.Points[0].Y != partial.Base || partial.Points[1].Y != partial.Top {
		t.Errorf("partial panel %+v", partial)
	}
	page := renderHTML(t, m, "en")
	if n := strings.Count(page, `<g class="trend-panel"`); n != len(want) {
		t.Errorf("%d trend panels in the page, want %d", n, len(want))
	}
}

// cvdMatrices simulate colour vision deficiencies in linear RGB (Machado,
// Oliveira and Fernandes 2009, severity 1).
var cvdMatrices = map[string][3][3]float64{
	"normal":       {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
	"protanopia":   {{0.152286, 1.052583, -0.204868}, {0.114503, 0.786281, 0.099216}, {-0.003882, -0.048116, 1.051998}},
	"deuteranopia": {{0.367322, 0.860646, -0.227968}, {0.280085, 0.672501, 0.047413}, {-0.011820, 0.042940, 0.968881}},
	"tritanopia":   {{1.255528, -0.076749, -0.178779}, {-0.078411, 0.930809, 0.147602}, {0.004733, 0.691367, 0.303900}},
}

// labUnder returns the CIELAB coordinates of a colour as seen with a
// simulated colour vision.
func labUnder(hex string, m [3][3]float64) [3]float64 {
	r, g, b := linearRGB(hex)
	in := [3]float64{r, g, b}
	var c [3]float64
	for i := range 3 {
		c[i] = max(0, min(1, m[i][0]*in[0]+m[i][1]*in[1]+m[i][2]*in[2]))
	}
	x := (0.4124*c[0] + 0.3576*c[1] + 0.1805*c[2]) / 0.95047
	y := 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	z := (0.0193*c[0] + 0.1192*c[1] + 0.9505*c[2]) / 1.08883
	f := func(t float64) float64 {
		if t > 216.0/24389 {
			return math.Cbrt(t)
		}
		return (24389.0/27*t + 16) / 116
	}
	return [3]float64{116*f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))}
}

// TestVerdictColorsDistinct: no-mail, unreachable, dns-error and unknown
// differ from each other and from every other verdict colour by a CIELAB
// distance of at least 15 (clearly different side by side), with normal
// vision and with simulated protanopia, deuteranopia and tritanopia. Their
// badges' text keeps a WCAG contrast of at least 4.5.
func TestVerdictColorsDistinct(t *testing.T) {
	t.Parallel()
	const minDelta = 15
	grey := []result.Verdict{result.NoMail, result.Unreachable, result.DNSError, result.Unknown}
	for _, a := range grey {
		for _, b := range Buckets() {
			if a == b || (slices.Contains(grey, b) && slices.Index(grey, b) < slices.Index(grey, a)) {
				continue
			}
			for name, m := range cvdMatrices {
				la, lb := labUnder(colorOf(a), m), labUnder(colorOf(b), m)
				if d := math.Hypot(math.Hypot(la[0]-lb[0], la[1]-lb[1]), la[2]-lb[2]); d < minDelta {
					t.Errorf("%s %s and %s %s differ by only ΔE %.1f with %s", a, colorOf(a), b, colorOf(b), d, name)
				}
			}
		}
		fill, text := relLuminance(colorOf(a)), relLuminance(textOn(colorOf(a)))
		if c := (max(fill, text) + 0.05) / (min(fill, text) + 0.05); c < 4.5 {
			t.Errorf("%s badge: text contrast %.1f, want at least 4.5", a, c)
		}
	}
	// The badge rules come from verdictColors.
	for _, v := range Buckets() {
		if !strings.Contains(reportCSS, ".v-"+string(v)+"{background:"+colorOf(v)+";") {
			t.Errorf("no badge rule for %s in the style sheet", v)
		}
	}
}
