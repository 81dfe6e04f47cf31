package report

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/tlsready/tlsready/scanner/result"
)

//go:embed templates/report.html.tmpl templates/report.css templates/report.js
var templateFS embed.FS

var (
	// The style sheet ends with the verdict badge rules, made from
	// verdictColors (one place for the badges and the charts).
	reportCSS    = mustRead("templates/report.css") + verdictCSS()
	reportScript = mustRead("templates/report.js")
	reportTmpl   = mustRead("templates/report.html.tmpl")
)

func mustRead(name string) string {
	b, err := templateFS.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot happen
	}
	return string(b)
}

// Limits of the per-domain details in the HTML (the CSV has everything).
const (
	maxHosts = 10
	maxAddrs = 8
)

// CSP is the Content-Security-Policy of the HTML report: nothing may be
// fetched; only the report's own inline style sheet and script (by hash) run.
func CSP() string {
	return "default-src 'none'; style-src " + hashSource(reportCSS) + "; script-src " + hashSource(reportScript) +
		"; img-src data:; base-uri 'none'; form-action 'none'"
}

func hashSource(s string) string {
	h := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(h[:]) + "'"
}

// verdictColors are the colours of the verdict badges and the charts.
//
// The TLS verdicts run from greens (protected) through amber, orange and red
// to violet (broken). The four verdicts that say nothing about TLS get
// colours of their own, apart from those and from each other also for
// colour-blind readers (TestVerdictColorsDistinct checks the distances
// under simulated protanopia, deuteranopia and tritanopia): greys for the
// domains there is nothing to measure at (no-mail dark, unknown light), blues
// for the temporary ones (unreachable dark, dns-error light).
var verdictColors = map[result.Verdict]string{
	result.DANE: "#116329", result.MTASTS: "#1a7f37", result.Verified: "#4a9a52", result.Encrypted: "#9a6700",
	result.Partial: "#bc4c00", result.Plaintext: "#cf222e", result.Broken: "#8250df",
	result.NoMail: "#57606a", result.Unreachable: "#0a3069", result.DNSError: "#56b4e9", result.Unknown: "#d0d7de",
}

func colorOf(v result.Verdict) string {
	if c, ok := verdictColors[v]; ok {
		return c
	}
	return verdictColors[result.Unknown]
}

// textOn returns the badge text colour for a fill: dark on light fills,
// white on dark ones (whichever contrasts more, WCAG relative luminance).
func textOn(fill string) string {
	if relLuminance(fill) > 0.179 {
		return "#1f2328"
	}
	return "#ffffff"
}

// relLuminance is the WCAG 2 relative luminance of a "#rrggbb" colour.
func relLuminance(hex string) float64 {
	r, g, b := linearRGB(hex)
	return 0.2126*r + 0.7152*g + 0.0722*b
}

// linearRGB decodes "#rrggbb" to linear-light sRGB components in [0, 1].
func linearRGB(hex string) (r, g, b float64) {
	v, _ := strconv.ParseUint(strings.TrimPrefix(hex, "#"), 16, 32)
	c := func(x uint64) float64 {
		f := float64(x) / 255
		if f <= 0.04045 {
			return f / 12.92
		}
		return math.Pow((f+0.055)/1.055, 2.4)
	}
	return c(v >> 16 & 0xff), c(v >> 8 & 0xff), c(v & 0xff)
}

// verdictCSS is the style rule of each verdict's badge class (.v-plaintext).
func verdictCSS() string {
	var b strings.Builder
	for _, v := range Buckets() {
		fmt.Fprintf(&b, ".v-%s{background:%s;color:%s}\n", v, colorOf(v), textOn(colorOf(v)))
	}
	return b.String()
}

type htmlData struct {
	Lang           string
	M              *Model
	CSP            string
	CSS            template.CSS
	Script         template.JS
	PlainShare     string // plaintext share, 4 decimals, for tests and tools
	Buckets        []result.Verdict
	OutcomeRows    []outcomeRow
	FilterVerdicts []result.Verdict
	FilterFlags    []string
	ChartCitizens  barChart
	ChartDomains   barChart
	ChartAtRisk    barChart
	ChartTrend     trendChart
	Severities     []string // most severe first, for the legend of the reasons table
}

type outcomeRow struct {
	Key    string
	Values []int64
}

// RenderHTML writes the self-contained HTML report in lang ("ja" or "en";
// anything else is English).
func RenderHTML(w io.Writer, m *Model, lang string) error {
	lang = NormalizeLang(lang)
	tr := Translator(lang)
	p := punctFor(lang)
	t, err := template.New("report").Funcs(template.FuncMap{
		"T": tr,
		// Tf is T with the placeholders {1}, {2}, ... filled with args.
		"Tf": func(key string, args ...any) string {
			s := make([]string, len(args))
			for i, a := range args {
				s[i] = fmt.Sprint(a)
			}
			return fill(tr(key), s...)
		},
		"colon":      func() string { return p.Colon },
		"open":       func() string { return p.Open },
		"close":      func() string { return p.Close },
		"comma":      func() string { return p.Comma },
		"stop":       func() string { return p.Stop },
		"unit":       func(what string) string { return unitFor(lang, what) },
		"num":        func(n any) string { return formatInt(toInt64(n)) },
		"signed":     formatSigned,
		"pct":        formatPct,
		"date":       formatTime,
		"day":        formatDay,
		"clip":       clip,
		"join":       joinStrings,
		"flagText":   func(f string) string { return FlagMeaning(lang, f) },
		"severity":   func(f string) string { return FlagSeverity(f).String() },
		"advice":     func(v result.Verdict, flags []string) Advice { return DomainAdvice(lang, v, flags) },
		"inc":        func(i int) int { return i + 1 },
		"limitHosts": func(h []result.Host) []result.Host { return h[:min(len(h), maxHosts)] },
		"limitAddrs": func(a []result.Addr) []result.Addr { return a[:min(len(a), maxAddrs)] },
		"maxHosts":   func() int { return maxHosts },
		"leaf": func(t *result.TLSInfo) *result.CertInfo {
			if t == nil || len(t.Certs) == 0 {
				return nil
			}
			return &t.Certs[0]
		},
	}).Parse(reportTmpl)
	if err != nil {
		return fmt.Errorf("report: template: %w", err)
	}
	d := htmlData{
		Lang:        lang,
		M:           m,
		CSP:         CSP(),
		CSS:         template.CSS(reportCSS),
		Script:      template.JS(reportScript),
		PlainShare:  "0",
		Buckets:     Buckets(),
		OutcomeRows: outcomeRows(m.WhatIf),
		Severities:  []string{SeverityCritical.String(), SeverityWarning.String(), SeverityNotice.String(), SeverityInfo.String()},
	}
	if m.Total.Citizens > 0 {
		d.PlainShare = strconv.FormatFloat(float64(m.WhatIf.PlaintextToday)/float64(m.Total.Citizens), 'f', 4, 64)
	}
	seenFlags := map[string]bool{}
	for _, r := range m.Top {
		if !slices.Contains(d.FilterVerdicts, r.Verdict) {
			d.FilterVerdicts = append(d.FilterVerdicts, r.Verdict)
		}
		for _, f := range r.Flags {
			if !seenFlags[f] {
				seenFlags[f] = true
				d.FilterFlags = append(d.FilterFlags, f)
			}
		}
	}
	slices.SortFunc(d.FilterVerdicts, func(a, b result.Verdict) int { return a.Rank() - b.Rank() })
	slices.Sort(d.FilterFlags)
	d.ChartCitizens = verdictChart(m, true)
	d.ChartDomains = verdictChart(m, false)
	d.ChartAtRisk = atRiskChart(m, p)
	d.ChartTrend = buildTrendChart(m, tr, p)
	if err := t.Execute(w, d); err != nil {
		return fmt.Errorf("report: html: %w", err)
	}
	return nil
}

func toInt64(n any) int64 {
	switch n := n.(type) {
	case int:
		return int64(n)
	case int64:
		return n
	case uint16:
		return int64(n)
	}
	return 0
}

func joinStrings(s []string, sep string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += sep
		}
		out += x
	}
	return out
}

func outcomeRows(w WhatIf) []outcomeRow {
	rows := []outcomeRow{
		{Key: "protected"}, {Key: "encrypted"}, {Key: "plaintext"}, {Key: "partial"},
		{Key: "bounced"}, {Key: "broken_policy"}, {Key: "no_mail"}, {Key: "unknown"},
	}
	for _, o := range w.Outcomes {
		vals := []int64{o.Protected, o.Encrypted, o.Plaintext, o.Partial, o.Bounced, o.BrokenPolicy, o.NoMail, o.Unknown}
		for i := range rows {
			rows[i].Values = append(rows[i].Values, vals[i])
		}
	}
	return rows
}
