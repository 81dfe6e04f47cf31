package report

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strconv"

	"github.com/tlsready/tlsready/scanner/result"
)

//go:embed templates/report.html.tmpl templates/report.css templates/report.js
var templateFS embed.FS

var (
	reportCSS    = mustRead("templates/report.css")
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

// verdictColors are the chart colours (the CSS badges use the same).
var verdictColors = map[result.Verdict]string{
	result.DANE: "#116329", result.MTASTS: "#1a7f37", result.Verified: "#4a9a52", result.Encrypted: "#9a6700",
	result.Partial: "#bc4c00", result.Plaintext: "#cf222e", result.Broken: "#8250df", result.NoMail: "#6e7781",
	result.Unreachable: "#818b98", result.DNSError: "#959da5", result.Unknown: "#afb8c1",
}

func colorOf(v result.Verdict) string {
	if c, ok := verdictColors[v]; ok {
		return c
	}
	return verdictColors[result.Unknown]
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
	t, err := template.New("report").Funcs(template.FuncMap{
		"T":          tr,
		"num":        func(n any) string { return formatInt(toInt64(n)) },
		"signed":     formatSigned,
		"pct":        formatPct,
		"date":       formatTime,
		"day":        formatDay,
		"clip":       clip,
		"join":       joinStrings,
		"flagText":   func(f string) string { return FlagMeaning(lang, f) },
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
	d.ChartAtRisk = atRiskChart(m)
	d.ChartTrend = buildTrendChart(m, tr)
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
