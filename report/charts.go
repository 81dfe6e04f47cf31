package report

import (
	"cmp"
	"fmt"

	"github.com/tlsready/tlsready/scanner/result"
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

func atRiskChart(m *Model) barChart {
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
			c.Bars[i].Title = r.Unicode + " (" + r.Domain + "): " + c.Bars[i].Value
		}
	}
	return c
}

type trendChart struct {
	Width, Height int
	Columns       []trendColumn
	Legend        []legendItem
}

type trendColumn struct {
	Segments       []segment
	LabelX, LabelY int
	TopY           int
	Label, Top     string
	Title          string
}

type segment struct {
	X, Y, W, H int
	Color      string
	Title      string
}

type legendItem struct {
	X, Y, TextX, TextY int
	Color, Label       string
}

// buildTrendChart draws one 100%-stacked column per run (share of citizens
// per verdict, best at the bottom), labelled with the run and its plaintext
// share on top.
func buildTrendChart(m *Model, tr func(string) string) trendChart {
	const (
		plotH   = 220
		colW    = 44
		gap     = 20
		top     = 24
		legendW = 150
	)
	n := len(m.Trend)
	c := trendChart{Width: max(n*(colW+gap)+gap+legendW, 360), Height: top + plotH + 40}
	for i, p := range m.Trend {
		x := gap + i*(colW+gap)
		col := trendColumn{
			LabelX: x + colW/2, LabelY: top + plotH + 16, TopY: top - 8,
			Label: fmt.Sprintf("#%d %s", p.Run.ID, formatDay(p.Run.FinishedAt)[5:]),
			Top:   formatPct(p.Verdicts[bucket(result.Plaintext)].Citizens, p.Total.Citizens),
			Title: fmt.Sprintf("%s #%d %s", tr("run"), p.Run.ID, formatTime(p.Run.FinishedAt)),
		}
		if len(formatDay(p.Run.FinishedAt)) < 10 {
			col.Label = fmt.Sprintf("#%d", p.Run.ID)
		}
		y := top + plotH
		for b, cnt := range p.Verdicts {
			if cnt.Citizens == 0 || p.Total.Citizens == 0 {
				continue
			}
			h := int(float64(plotH)*float64(cnt.Citizens)/float64(p.Total.Citizens) + 0.5)
			y -= h
			v := bucketList[b]
			col.Segments = append(col.Segments, segment{X: x, Y: y, W: colW, H: h, Color: colorOf(v),
				Title: fmt.Sprintf("%s: %s (%s)", v, formatInt(cnt.Citizens), formatPct(cnt.Citizens, p.Total.Citizens))})
		}
		c.Columns = append(c.Columns, col)
	}
	lx := c.Width - legendW + 10
	for i, v := range bucketList {
		y := top + i*18
		c.Legend = append(c.Legend, legendItem{X: lx, Y: y, TextX: lx + 18, TextY: y + 11, Color: colorOf(v), Label: string(v)})
	}
	return c
}
