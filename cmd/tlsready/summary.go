package main

import (
	"fmt"
	"io"

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
		fmt.Fprintf(w, "%d bad input lines skipped (by reason: %v)\n", s.Run.Stats.BadLines, s.Run.Stats.BadByReason)
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
