package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/tlsready/tlsready/scanner/result"
)

// printSummary prints the per-verdict table of a finished run.
func printSummary(w io.Writer, s scanSummary) {
	var domains, citizens int64
	for _, c := range s.Verdicts {
		domains += c[0]
		citizens += c[1]
	}
	fmt.Fprintf(w, "run %d: %d citizens at %d domains (%d scanned, %d cached), %d MX IPs probed, %d SMTP connections, %s\n",
		s.Run.ID, citizens, domains, s.Run.Stats.Scanned, s.Run.Stats.Reused, s.Run.Stats.MXIPs, s.Run.Stats.Connections, s.Elapsed.Round(1e6))
	if s.Run.Stats.BadLines > 0 {
		fmt.Fprintf(w, "%d bad input lines skipped (by reason: %s)\n", s.Run.Stats.BadLines, formatReasons(s.Run.Stats.BadByReason))
	}
	t := tablewriter.NewTable(w,
		tablewriter.WithHeader([]string{"verdict", "domains", "citizens", "share"}),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: []tw.Align{tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight}}),
	)
	for _, v := range append(append([]result.Verdict{}, result.Verdicts...), result.Unknown) {
		c, ok := s.Verdicts[v]
		if !ok {
			continue
		}
		share := 0.0
		if citizens > 0 {
			share = 100 * float64(c[1]) / float64(citizens)
		}
		_ = t.Append([]string{string(v), fmt.Sprint(c[0]), fmt.Sprint(c[1]), fmt.Sprintf("%.1f%%", share)})
	}
	t.Footer([]string{"total", fmt.Sprint(domains), fmt.Sprint(citizens), "100%"})
	_ = t.Render()
}

// sortedReasons returns the reasons of bad lines, most frequent first, then
// by name: the same order on every run.
func sortedReasons(byReason map[string]int64) []string {
	reasons := make([]string, 0, len(byReason))
	for r := range byReason {
		reasons = append(reasons, r)
	}
	slices.SortFunc(reasons, func(a, b string) int {
		return cmp.Or(cmp.Compare(byReason[b], byReason[a]), strings.Compare(a, b))
	})
	return reasons
}

// formatReasons renders bad-line counts as "no-at-sign 3, invalid-domain 1".
func formatReasons(byReason map[string]int64) string {
	parts := make([]string, 0, len(byReason))
	for _, r := range sortedReasons(byReason) {
		parts = append(parts, fmt.Sprintf("%s %d", r, byReason[r]))
	}
	return strings.Join(parts, ", ")
}
