package report

import (
	"cmp"
	"fmt"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// Inline SVG charts. The geometry is computed here; the markup is written by
// html/template, which escapes every label.

type barChart struct {
	Width, Height int
	Bars          []bar
}

type bar struct {
	X, Y, W, H     int
	LabelX, ValueX int
	TextY          int
	Label, Value   string
	Title          string
	Color          string
}

const barRowH = 22

// newBarChart lays out horizontal bars: labelW pixels of labels, areaW of
// bar for the largest value, then the value text.
func newBarChart(labelW, areaW int, labels []string, values []int64, colors []string, total int64) barChart {
	var maxV int64
	for _, v := range values {
		maxV = max(maxV, v)
	}
	c := barChart{Width: labelW + areaW + 120, Height: len(values)*barRowH + 4}
	for i, v := range values {
		w := 0
		if maxV > 0 {
			w = int(float64(areaW) * float64(v) / float64(maxV))
		}
		if v > 0 && w == 0 {
			w = 1
		}
		y := i*barRowH + 2
		label := clip(labels[i], labelW/7)
		value := formatInt(v) + " (" + formatPct(v, total) + ")"
		c.Bars = append(c.Bars, bar{
			X: labelW, Y: y, W: w, H: barRowH - 6,
			LabelX: labelW - 6, ValueX: labelW + w + 6, TextY: y + barRowH - 9,
			Label: label, Value: value, Title: labels[i] + ": " + value, Color: colors[i],
		})
	}
	return c
}

func verdictChart(m *Model, citizens bool) barChart {
	var labels, colors []string
	var values []int64
	total := m.Total.Domains
	if citizens {
		total = m.Total.Citizens
	}
	for _, vc := range m.Verdicts {
		if vc.Verdict == result.Unknown && vc.Domains == 0 {
			continue
		}
		labels = append(labels, string(vc.Verdict))
		colors = append(colors, colorOf(vc.Verdict))
		if citizens {
			values = append(values, vc.Citizens)
		} else {
			values = append(values, vc.Domains)
		}
	}
	return newBarChart(90, 240, labels, values, colors, total)
}

func atRiskChart(m *Model, p punct) barChart {
	var labels, colors []string
	var values []int64
	for _, r := range m.AtRisk {
		labels = append(labels, cmp.Or(r.Unicode, r.Domain))
		colors = append(colors, colorOf(r.Verdict))
		values = append(values, r.Citizens)
	}
	c := newBarChart(230, 420, labels, values, colors, m.Total.Citizens)
	for i, r := range m.AtRisk {
		if r.Unicode != "" { // the A-label in the tooltip
			c.Bars[i].Title = r.Unicode + p.Open + r.Domain + p.Close + p.Colon + c.Bars[i].Value
		}
	}
	return c
}

// trendChart is the trend as small multiples: one panel per verdict that
// has citizens in any run of the trend, each with its own scale and a line
// of the verdict's citizens over the runs. Counts, not shares: a verdict's
// line does not move because another verdict grew, and a small verdict
// (plaintext) fills its own panel instead of being a sliver of a 100% column.
type trendChart struct {
	Width, Height int
	Panels        []trendPanel
}

type trendPanel struct {
	X, Y, W, H     int // the panel's box in the chart
	InnerW, InnerH int // its frame, inside the box (half-pixel stroke)
	Verdict        string
	Color          string
	Now            string // this run's count and share, top right
	Max            string // the top of the panel's scale
	PlotX          int    // left edge of the plot area, for the scale labels
	Top, Base      int    // y of the scale's top and of zero
	Line           string // polyline points
	Points         []trendMark
	Ticks          []trendTick // run labels under the first and last point
}

type trendMark struct {
	X, Y  int
	Title string
}

type trendTick struct {
	X      int
	Anchor string
	Label  string
}

// buildTrendChart lays out one panel per verdict with citizens in the
// trend (Buckets order), three to a row; in each, the verdict's citizens per
// run, from zero to the panel's own maximum.
func buildTrendChart(m *Model, tr func(string) string, pu punct) trendChart {
	const (
		cols   = 3
		panelW = 300
		panelH = 130
		gap    = 12
		padL   = 46 // scale labels
		padR   = 14
		padT   = 30 // title row
		padB   = 22 // run labels
	)
	var c trendChart
	for b, v := range bucketList {
		var peak int64
		for _, p := range m.Trend {
			peak = max(peak, p.Verdicts[b].Citizens)
		}
		if peak == 0 {
			continue
		}
		i := len(c.Panels)
		pn := trendPanel{
			X: (i % cols) * (panelW + gap), Y: (i / cols) * (panelH + gap), W: panelW, H: panelH, InnerW: panelW - 1, InnerH: panelH - 1,
			Verdict: string(v), Color: colorOf(v), Max: formatInt(peak),
			PlotX: padL, Top: padT, Base: panelH - padB,
		}
		if n := len(m.Trend); n > 0 {
			last := m.Trend[n-1]
			pn.Now = formatInt(last.Verdicts[b].Citizens) + " (" + formatPct(last.Verdicts[b].Citizens, last.Total.Citizens) + ")"
		}
		plotW := panelW - padL - padR
		for k, p := range m.Trend {
			x := padL + plotW/2
			if len(m.Trend) > 1 {
				x = padL + k*plotW/(len(m.Trend)-1)
			}
			cnt := p.Verdicts[b].Citizens
			y := pn.Base - int(float64(pn.Base-pn.Top)*float64(cnt)/float64(peak)+0.5)
			if pn.Line != "" {
				pn.Line += " "
			}
			pn.Line += fmt.Sprintf("%d,%d", x, y)
			pn.Points = append(pn.Points, trendMark{X: x, Y: y,
				Title: fmt.Sprintf("%s #%d %s · %s%s%s%s%s%s", tr("run"), p.Run.ID, formatTime(p.Run.FinishedAt), v,
					pu.Colon, formatInt(cnt), pu.Open, formatPct(cnt, p.Total.Citizens), pu.Close)})
			if k == 0 || k == len(m.Trend)-1 {
				anchor := "start"
				if k > 0 {
					anchor = "end"
				}
				if len(m.Trend) == 1 {
					anchor = "middle"
				}
				pn.Ticks = append(pn.Ticks, trendTick{X: x, Anchor: anchor, Label: runLabel(p.Run)})
			}
		}
		c.Panels = append(c.Panels, pn)
	}
	rows := (len(c.Panels) + cols - 1) / cols
	c.Width = min(len(c.Panels), cols)*(panelW+gap) - gap
	c.Height = max(rows*(panelH+gap)-gap, 0)
	return c
}

// runLabel is a run's short label in the trend: "#3 02-10".
func runLabel(r store.Run) string {
	if d := formatDay(r.FinishedAt); len(d) == 10 {
		return fmt.Sprintf("#%d %s", r.ID, d[5:])
	}
	return fmt.Sprintf("#%d", r.ID)
}
