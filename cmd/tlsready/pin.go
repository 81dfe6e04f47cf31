package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/store"
)

func newPinCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pin",
		Short: "Per-domain gateway policies that win over scan results (set, list, rm), audited in the database",
		Long: `A pin sets the gateway's policy for a domain whatever the scans say: serve's
socketmap and HTTP API, export policy and serve's cache file all answer it
(the HTTP API says who set it, when, why and until when). A pin with --until
stops applying at that time by each node's clock; until it is removed it
stays listed as expired. Every change is recorded in the database (who:
the operating-system user and the user who ran sudo, the host; when; why;
the old and the new policy) and reaches every serve node with its next
refresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErr("pin needs a subcommand: set, list or rm (see tlsready pin --help)")
		},
	}
	cmd.AddCommand(newPinSetCmd(), newPinListCmd(), newPinRmCmd())
	return cmd
}

// pinDomain is a command-line domain as the gateway keys it (A-label).
func pinDomain(arg string) (string, error) {
	d, err := gateway.NormalizeDomain(arg)
	if err != nil {
		return "", usageErr("%q is not a valid domain name", arg)
	}
	return d, nil
}

// parseUntil reads --until: an RFC 3339 time, or a duration from now
// (Go's units, and d for days: 12h, 7d).
func parseUntil(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		if !t.After(now) {
			return time.Time{}, usageErr("--until %s is not in the future", s)
		}
		return t.UTC(), nil
	}
	d, err := time.ParseDuration(s)
	if days, ok := strings.CutSuffix(s, "d"); ok && err != nil {
		var n int
		if n, err = strconv.Atoi(days); err == nil {
			d = time.Duration(n) * 24 * time.Hour
		}
	}
	if err != nil || d <= 0 {
		return time.Time{}, usageErr("--until %q: want an RFC 3339 time (2026-12-31T00:00:00Z) or a positive duration (12h, 7d)", s)
	}
	return now.Add(d).UTC(), nil
}

func checkReason(r string) error {
	if len(r) > store.MaxPinReason {
		return usageErr("--reason is longer than %d bytes", store.MaxPinReason)
	}
	return nil
}

func newPinSetCmd() *cobra.Command {
	var db, until, reason string
	cmd := &cobra.Command{
		Use:   "set DOMAIN POLICY --db FILE [--until T] [--reason TEXT]",
		Short: "Pin a domain's gateway policy: " + strings.Join(gateway.PinPolicies, ", "),
		Long: `Pin DOMAIN's gateway policy to POLICY, replacing its pin if it has one.
POLICY is a Postfix TLS level: none (no TLS at all), may, encrypt, verify,
secure or dane-only. --until is an RFC 3339 time or a duration from now
(12h, 7d); without it the pin applies until removed.`,
		Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 { // the policy
				return gateway.PinPolicies, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			now := time.Now()
			var t time.Time
			st, d, err := openForPin(cmd, db, args[0], reason, func() (err error) {
				if !gateway.ValidPinPolicy(args[1]) {
					return usageErr("%q is not a policy; valid: %s", args[1], strings.Join(gateway.PinPolicies, ", "))
				}
				t, err = parseUntil(until, now)
				return err
			})
			if err != nil {
				return err
			}
			defer st.Close()
			who, host := auditIdentity()
			old, replaced, err := st.SetPin(cmd.Context(), store.Pin{Domain: d, Policy: args[1], Reason: reason, Until: t,
				At: now, OSUser: who, Host: host})
			if err != nil {
				return err
			}
			msg := fmt.Sprintf("pinned %s to %s", d, args[1])
			if !t.IsZero() {
				msg += " until " + t.Format(time.RFC3339)
			}
			if replaced {
				msg += " (was " + old.Policy + ")"
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL")
	f.StringVar(&until, "until", "", "expiry: RFC 3339 time or duration from now (12h, 7d); default none")
	f.StringVar(&reason, "reason", "", "why (recorded with the pin and in the audit trail)")
	return cmd
}

// openForPin checks what pin set and pin rm both take (--db, the domain
// argument, then the command's own arguments with check when not nil, then
// --reason) and opens the database for writing; the domain comes back in
// its A-label form.
func openForPin(cmd *cobra.Command, db, arg, reason string, check func() error) (*store.Store, string, error) {
	if db == "" {
		return nil, "", usageErr("--db is required")
	}
	d, err := pinDomain(arg)
	if err != nil {
		return nil, "", err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, "", err
		}
	}
	if err := checkReason(reason); err != nil {
		return nil, "", err
	}
	st, err := openExisting(cmd.Context(), db, false)
	if err != nil {
		return nil, "", err
	}
	return st, d, nil
}

func newPinRmCmd() *cobra.Command {
	var db, reason string
	cmd := &cobra.Command{
		Use:   "rm DOMAIN --db FILE [--reason TEXT]",
		Short: "Remove a domain's pin: the scan results apply again",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, d, err := openForPin(cmd, db, args[0], reason, nil)
			if err != nil {
				return err
			}
			defer st.Close()
			who, host := auditIdentity()
			old, err := st.RemovePin(cmd.Context(), store.PinEvent{Domain: d, At: time.Now(), Reason: reason, OSUser: who, Host: host})
			if errors.Is(err, store.ErrNotFound) {
				return usageErr("%s has no pin in %s", d, store.RedactURL(db))
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed the pin of %s (%s)\n", d, old.Policy)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL")
	f.StringVar(&reason, "reason", "", "why (recorded in the audit trail)")
	return cmd
}

// pinListing is the JSON of pin list.
type pinListing struct {
	Pins  []pinRow         `json:"pins"`
	Audit []store.PinEvent `json:"audit,omitempty"`
}

type pinRow struct {
	store.Pin
	Active bool `json:"active"`
}

func newPinListCmd() *cobra.Command {
	var (
		db         string
		asJSON     bool
		audit      bool
		auditLimit int
	)
	cmd := &cobra.Command{
		Use:   "list --db FILE [--audit] [--json]",
		Short: "List the pins (expired ones too) and, with --audit, their audit trail",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			st, err := openExisting(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			ps, err := st.Pins(cmd.Context())
			if err != nil {
				return err
			}
			now := time.Now()
			l := pinListing{Pins: []pinRow{}}
			for _, p := range ps {
				l.Pins = append(l.Pins, pinRow{Pin: p, Active: p.Active(now)})
			}
			if audit {
				if l.Audit, err = st.PinAudit(cmd.Context(), "", auditLimit); err != nil {
					return err
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), l)
			}
			printPins(cmd.OutOrStdout(), l)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL")
	f.BoolVar(&asJSON, "json", false, "JSON instead of a table")
	f.BoolVar(&audit, "audit", false, "also the audit trail of pin changes, newest first")
	f.IntVar(&auditLimit, "audit-limit", 100, "most audit entries shown (0: all)")
	return cmd
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printPins(w io.Writer, l pinListing) {
	active := 0
	for _, p := range l.Pins {
		if p.Active {
			active++
		}
	}
	fmt.Fprintf(w, "%d pins (%d active)\n", len(l.Pins), active)
	if len(l.Pins) > 0 {
		t := tablewriter.NewTable(w, tablewriter.WithHeader([]string{"domain", "policy", "until", "state", "reason", "set by", "at"}))
		for _, p := range l.Pins {
			state := "active"
			if !p.Active {
				state = "expired"
			}
			_ = t.Append([]string{p.Domain, p.Policy, fmtTime(p.Until), state, strconv.Quote(p.Reason),
				p.OSUser + "@" + p.Host, fmtTime(p.At)})
		}
		_ = t.Render()
	}
	if l.Audit == nil {
		return
	}
	fmt.Fprintf(w, "audit trail (%d entries shown, newest first)\n", len(l.Audit))
	t := tablewriter.NewTable(w, tablewriter.WithHeader([]string{"at", "action", "domain", "old", "new", "until", "reason", "by"}))
	for _, e := range l.Audit {
		_ = t.Append([]string{fmtTime(e.At), e.Action, e.Domain, e.OldPolicy, e.NewPolicy, fmtTime(e.Until),
			strconv.Quote(e.Reason), e.OSUser + "@" + e.Host})
	}
	_ = t.Render()
}
