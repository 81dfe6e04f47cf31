package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// printSummary prints the per-verdict table of a finished run.
func printSummary(w io.Writer, s job.Summary) {
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
	printDuplicates(w, s.Run.Stats)
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

// formatReasons renders bad-line counts as "no-at-sign 3, invalid-domain 1".
func formatReasons(byReason map[string]int64) string {
	parts := make([]string, 0, len(byReason))
	for _, r := range job.SortedReasons(byReason) {
		parts = append(parts, fmt.Sprintf("%s %d", r, byReason[r]))
	}
	return strings.Join(parts, ", ")
}

// printDuplicates says why the register's entries and the citizens differ:
// lines that repeat an earlier line's id replace it; lines that repeat an
// address under another id are citizens of their own.
func printDuplicates(w io.Writer, st store.RunStats) {
	if st.DuplicateIDs > 0 {
		fmt.Fprintf(w, "%d of %d register entries repeat an earlier line's id and replace it, so %d citizens (%s)\n",
			st.DuplicateIDs, st.Entries, st.Recipients, job.FormatDuplicates(st.DuplicateIDLines, 10))
	}
	if st.DuplicateAddrs > 0 {
		what := "register entries repeat"
		if st.DuplicateAddrs == 1 {
			what = "register entry repeats"
		}
		fmt.Fprintf(w, "%d %s an earlier line's address under another id, each counted as a citizen (%s)\n",
			st.DuplicateAddrs, what, job.FormatDuplicates(st.DuplicateAddrLines, 10))
	}
}
