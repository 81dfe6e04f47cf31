package report

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/tlsready/tlsready/scanner/result"
)

// TableTopN is the number of domains in the terminal's top-domains table.
const TableTopN = 20

// RenderTable writes the terminal summary: the verdict table, the what-if
// table and the top domains, each fitting an 80-column terminal.
func RenderTable(w io.Writer, m *Model, lang string) error {
	tr, p := Translator(lang), punctFor(lang)
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "%s #%d · %s %s\n%s%s%s / %s%s%s%s\n\n", tr("t_run"), m.Run.ID, tr("scan_finished"), formatTime(m.Run.FinishedAt),
		tr("t_plaintext"), p.Colon, formatInt(m.WhatIf.PlaintextToday), formatInt(m.Total.Citizens),
		p.Open, formatPct(m.WhatIf.PlaintextToday, m.Total.Citizens), p.Close)

	fmt.Fprintln(bw, tr("t_summary"))
	t := newTable(bw, tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignRight)
	t.Header(tr("col_verdict"), tr("col_citizens"), "%", tr("col_domains"), "%")
	for _, vc := range m.Verdicts {
		if vc.Verdict == result.Unknown && vc.Domains == 0 {
			continue
		}
		_ = t.Append(string(vc.Verdict), formatInt(vc.Citizens), formatPct(vc.Citizens, m.Total.Citizens),
			formatInt(vc.Domains), formatPct(vc.Domains, m.Total.Domains))
	}
	t.Footer(tr("total"), formatInt(m.Total.Citizens), "100%", formatInt(m.Total.Domains), "100%")
	if err := t.Render(); err != nil {
		return err
	}

	fmt.Fprintln(bw, "\n"+tr("t_whatif"))
	t = newTable(bw, tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignRight)
	t.Header(tr("t_policy"), tr("t_plain"), tr("t_maybe"), tr("t_bounce"), tr("t_safe"))
	for _, o := range m.WhatIf.Outcomes {
		_ = t.Append(tr("sc_"+string(o.Scenario)), formatInt(o.Plaintext), formatInt(o.Partial), formatInt(o.Bounced), formatInt(o.Protected))
	}
	if err := t.Render(); err != nil {
		return err
	}

	fmt.Fprintln(bw, "\n"+tr("t_top"))
	t = newTable(bw, tw.AlignRight, tw.AlignLeft, tw.AlignLeft, tw.AlignRight, tw.AlignLeft)
	t.Header("#", tr("col_domain"), tr("col_verdict"), tr("col_citizens"), tr("col_flags"))
	n := min(len(m.Top), TableTopN)
	for _, r := range m.Top[:n] {
		_ = t.Append(fmt.Sprint(r.Rank), clip(r.Domain, 28), string(r.Verdict), formatInt(r.Citizens), clip(strings.Join(r.Flags, " "), 22))
	}
	if err := t.Render(); err != nil {
		return err
	}
	if rest := m.Total.Domains - int64(n); rest > 0 {
		fmt.Fprintln(bw, fill(tr("t_more"), formatInt(rest)))
	}
	return bw.err
}

func newTable(w io.Writer, aligns ...tw.Align) *tablewriter.Table {
	return tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: aligns}),
		tablewriter.WithFooterAlignmentConfig(tw.CellAlignment{PerColumn: aligns}),
	)
}

// errWriter remembers the first write error so the renderers can write
// freely and report it once.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
