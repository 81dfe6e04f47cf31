package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// diffRow is a domain whose gateway policy differs between two runs.
type diffRow struct {
	Domain      string         `json:"domain"`
	Citizens    int64          `json:"citizens"` // in run B
	FromVerdict result.Verdict `json:"from_verdict"`
	ToVerdict   result.Verdict `json:"to_verdict"`
	From        string         `json:"from"` // the policy run A's verdict calls for
	To          string         `json:"to"`   // run B's
	// Gateway is what serve answers now (its first word; "none" for not
	// found), Pending the stricter policy waiting for confirmation, Pin
	// the policy of an active pin.
	Gateway string `json:"gateway"`
	Pending string `json:"pending,omitempty"`
	Pin     string `json:"pin,omitempty"`
	// Status: "applied" (the gateway answers To or, for a tightening,
	// stricter), "pending" (a tightening waiting for a second scan),
	// "pinned" (a pin decides), "not applied" (a later result or a stale
	// one decides).
	Status string `json:"status"`
}

// diffGroup is the tightenings or the loosenings.
type diffGroup struct {
	Domains  int       `json:"domains"`
	Citizens int64     `json:"citizens"`
	Pending  int       `json:"pending"` // tightenings only
	Rows     []diffRow `json:"rows"`
}

// diffReport is the output of tlsready diff.
type diffReport struct {
	RunA    int64     `json:"run_a"`
	RunB    int64     `json:"run_b"`
	Tighten diffGroup `json:"tighten"`
	Loosen  diffGroup `json:"loosen"`
	// Compared: the domains in both runs; New and Gone: in one only (a
	// domain's first observation applies as it is).
	Compared int `json:"compared"`
	New      int `json:"new"`
	Gone     int `json:"gone"`
}

func newDiffCmd() *cobra.Command {
	var (
		db                        string
		runs                      []int64
		asJSON                    bool
		limit                     int
		verifiedPol, encryptedPol string
	)
	cmd := &cobra.Command{
		Use:   "diff --db FILE [--run A --run B] [--json]",
		Short: "Domains whose gateway policy tightens or loosens between two runs, with the citizens affected",
		Long: `Compare the gateway policies the verdicts of two finished runs call for
(default: the last two; --run A --run B: any two, A the older view) and list
the domains whose policy tightens (e.g. may -> verify, verify -> dane-only)
or loosens, with the citizens of run B affected, most citizens first.

Each row says what serve answers now (it loads the database's results and
pins as serve does, with the same --verified-policy and --encrypted-policy):
a tightening seen in one scan only is "pending" until a second scan
confirms it (the confirmation rule, README "The gateway service"); a
loosening applies at once; a pinned domain answers its pin. MTA-STS counts
as secure.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			if len(runs) != 0 && len(runs) != 2 {
				return usageErr("--run is given twice (--run A --run B) or not at all (the last two finished runs)")
			}
			if verifiedPol != gateway.PolicyVerify && verifiedPol != gateway.PolicyMay {
				return usageErr("--verified-policy must be verify or may")
			}
			if encryptedPol != gateway.PolicyEncrypt && encryptedPol != gateway.PolicyMay {
				return usageErr("--encrypted-policy must be encrypt or may")
			}
			if limit < 0 {
				return usageErr("--limit must be 0 (all) or more")
			}
			st, err := openExisting(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			if len(runs) == 2 {
				for _, id := range runs {
					if id <= 0 {
						return usageErr("--run must be a run id")
					}
					if err := checkReportRun(cmd.Context(), st, db, id); err != nil {
						return err
					}
				}
			} else {
				all, err := st.Runs(cmd.Context())
				if err != nil {
					return err
				}
				var finished []int64
				for _, r := range all {
					if r.Status == store.RunFinished {
						finished = append(finished, r.ID)
					}
				}
				slices.Sort(finished)
				if len(finished) < 2 {
					return fmt.Errorf("diff needs two finished runs, and %s has %d (finished runs: %s)",
						store.RedactURL(db), len(finished), idList(finished))
				}
				runs = finished[len(finished)-2:]
			}
			gw, err := gateway.New(gateway.Config{Store: st, VerifiedPolicy: verifiedPol, EncryptedPolicy: encryptedPol})
			if err != nil {
				return err
			}
			if _, err := gw.Refresh(cmd.Context()); err != nil {
				return err
			}
			rep, err := diffRuns(cmd, st, gw, runs[0], runs[1], verifiedPol, encryptedPol)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), rep)
			}
			printDiff(cmd.OutOrStdout(), rep, limit)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL")
	f.Int64SliceVar(&runs, "run", nil, "the two runs to compare, older view first (default: the last two finished runs)")
	f.BoolVar(&asJSON, "json", false, "JSON, every row, instead of tables")
	f.IntVar(&limit, "limit", 50, "rows shown per table, most citizens first (0: all)")
	f.StringVar(&verifiedPol, "verified-policy", gateway.PolicyVerify, `policy for "verified", as serve's: verify or may`)
	f.StringVar(&encryptedPol, "encrypted-policy", gateway.PolicyEncrypt, `policy for "encrypted", as serve's: encrypt or may`)
	return cmd
}

// diffRuns compares runs a and b.
func diffRuns(cmd *cobra.Command, st *store.Store, gw *gateway.Server, a, b int64, verified, encrypted string) (diffReport, error) {
	ctx := cmd.Context()
	rep := diffReport{RunA: a, RunB: b, Tighten: diffGroup{Rows: []diffRow{}}, Loosen: diffGroup{Rows: []diffRow{}}}
	before := map[string]result.Verdict{}
	if err := st.RunDomains(ctx, a, func(d store.RunDomain) error {
		before[d.Domain] = d.Verdict
		return nil
	}); err != nil {
		return rep, err
	}
	seen := 0
	err := st.RunDomains(ctx, b, func(d store.RunDomain) error {
		old, ok := before[d.Domain]
		if !ok {
			rep.New++
			return nil
		}
		seen++
		from, to := gateway.VerdictPolicy(old, verified, encrypted), gateway.VerdictPolicy(d.Verdict, verified, encrypted)
		lf, lt := gateway.PolicyLevel(from), gateway.PolicyLevel(to)
		if lf == lt {
			return nil
		}
		ans, err := gw.Lookup(ctx, d.Domain)
		if err != nil {
			return err
		}
		row := diffRow{Domain: d.Domain, Citizens: d.Citizens, FromVerdict: old, ToVerdict: d.Verdict, From: from, To: to,
			Gateway: policyWord(ans.Policy), Pending: policyWord(ans.PendingPolicy)}
		if ans.PendingPolicy == "" {
			row.Pending = ""
		}
		g := &rep.Loosen
		lg := gateway.PolicyLevel(ans.Policy)
		switch {
		case ans.Pin != nil:
			row.Pin, row.Status = ans.Pin.Policy, "pinned"
		case lt > lf && ans.PendingPolicy != "":
			row.Status = "pending"
		case (lt > lf && lg >= lt) || (lt < lf && lg <= lt):
			row.Status = "applied"
		default:
			row.Status = "not applied"
		}
		if lt > lf {
			g = &rep.Tighten
			if row.Status == "pending" {
				g.Pending++
			}
		}
		g.Domains++
		g.Citizens += d.Citizens
		g.Rows = append(g.Rows, row)
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Compared, rep.Gone = seen, len(before)-seen
	for _, g := range []*diffGroup{&rep.Tighten, &rep.Loosen} {
		slices.SortFunc(g.Rows, func(x, y diffRow) int {
			return cmp.Or(cmp.Compare(y.Citizens, x.Citizens), cmp.Compare(x.Domain, y.Domain))
		})
	}
	return rep, nil
}

// policyWord is a policy's first word, "none" for not found.
func policyWord(p string) string {
	for i := 0; i < len(p); i++ {
		if p[i] == ' ' {
			return p[:i]
		}
	}
	if p == "" {
		return "none"
	}
	return p
}

func printDiff(w io.Writer, rep diffReport, limit int) {
	fmt.Fprintf(w, "run %d -> run %d: %d domains in both (%d new, %d gone)\n", rep.RunA, rep.RunB, rep.Compared, rep.New, rep.Gone)
	var pending, other []diffRow
	for _, r := range rep.Tighten.Rows {
		if r.Status == "pending" {
			pending = append(pending, r)
		} else {
			other = append(other, r)
		}
	}
	fmt.Fprintf(w, "tighten: %d domains, %d citizens\n", rep.Tighten.Domains, rep.Tighten.Citizens)
	printDiffRows(w, fmt.Sprintf("  pending, not answered until a second scan confirms them: %d domains", len(pending)), pending, limit)
	printDiffRows(w, fmt.Sprintf("  applied, pinned or decided by a later result: %d domains", len(other)), other, limit)
	fmt.Fprintf(w, "loosen (applied at once): %d domains, %d citizens\n", rep.Loosen.Domains, rep.Loosen.Citizens)
	printDiffRows(w, "", rep.Loosen.Rows, limit)
}

// printDiffRows prints a title (none when "") and a table of rows, at
// most limit (0: all).
func printDiffRows(w io.Writer, title string, rows []diffRow, limit int) {
	if title != "" {
		fmt.Fprintln(w, title)
	}
	if len(rows) == 0 {
		return
	}
	t := tablewriter.NewTable(w,
		tablewriter.WithHeader([]string{"domain", "citizens", "from", "to", "gateway now", "status"}),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{PerColumn: []tw.Align{tw.AlignLeft, tw.AlignRight, tw.AlignLeft, tw.AlignLeft, tw.AlignLeft, tw.AlignLeft}}),
	)
	for i, r := range rows {
		if limit > 0 && i == limit {
			_ = t.Append([]string{fmt.Sprintf("... %d more (--limit 0, --json)", len(rows)-limit), "", "", "", "", ""})
			break
		}
		status := r.Status
		if r.Pin != "" {
			status += " (" + r.Pin + ")"
		}
		_ = t.Append([]string{r.Domain, fmt.Sprint(r.Citizens), fmt.Sprintf("%s (%s)", r.From, r.FromVerdict),
			fmt.Sprintf("%s (%s)", r.To, r.ToVerdict), r.Gateway, status})
	}
	_ = t.Render()
}
