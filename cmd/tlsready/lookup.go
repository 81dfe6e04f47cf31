package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/scanner/dnsname"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

func newLookupCmd() *cobra.Command {
	var db string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lookup --db FILE [--json] DOMAIN|ADDRESS...",
		Short: "Answer from the cache: the verdict of each domain (an address counts for its domain)",
		Long: `Answer from the cache: the verdict of each domain (an address counts for its
domain; its local part is dropped at once and never printed).

Plain output is a table with a header and one row per argument, columns
separated by spaces, "-" for an empty cell:

  DOMAIN  VERDICT  SCANNED_AT  DOMAIN_UNICODE  FLAGS

With --json, one JSON object per line (README "check and lookup"). A domain
the cache does not know is "unknown" (not an error); an argument that is not
a domain name is a usage error (exit 2) and nothing is printed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			domains := make([]lookupArg, len(args))
			for i, arg := range args {
				a, err := parseLookupArg(arg)
				if err != nil {
					return err
				}
				domains[i] = a
			}
			st, err := openExisting(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			pins, err := activePins(cmd, st)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			tw := newLookupTable(out)
			for _, a := range domains {
				r, found, err := lookupOne(cmd, st, a)
				if err != nil {
					return err
				}
				pin := pins[r.Domain]
				switch {
				case asJSON && !found:
					err = enc.Encode(unknownAnswer{Domain: r.Domain, Unicode: r.Unicode, Verdict: r.Verdict, Flags: r.Flags, Reason: r.Reason, Pin: pin})
				case asJSON:
					err = enc.Encode(pinnedResult{Result: r, Pin: pin})
				default:
					tw.row(r)
				}
				if err != nil {
					return err
				}
			}
			if !asJSON {
				return tw.flush()
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database: SQLite file or postgres:// URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

// lookupArg is one argument reduced to its domain.
type lookupArg struct {
	ascii, unicode string
}

// parseLookupArg normalises a domain or address argument. The local part of
// an address is dropped at once: it is never printed or logged.
func parseLookupArg(arg string) (lookupArg, error) {
	d := arg
	if i := strings.LastIndexByte(arg, '@'); i >= 0 {
		d = arg[i+1:]
	}
	ascii, uni, err := dnsname.Normalize(d)
	if err != nil {
		return lookupArg{}, usageErr("%q is not a valid domain name: %v", d, err)
	}
	return lookupArg{ascii: ascii, unicode: uni}, nil
}

// unknownAnswer is the JSON answer for a domain the cache does not know:
// only what is known, no zero times or empty result sections.
type unknownAnswer struct {
	Domain  string           `json:"domain"`
	Unicode string           `json:"domain_unicode,omitempty"`
	Verdict result.Verdict   `json:"verdict"`
	Flags   []string         `json:"flags"`
	Reason  string           `json:"reason"`
	Pin     *gateway.PinInfo `json:"pin,omitempty"`
}

// pinnedResult is a stored result with the domain's active gateway pin
// (tlsready pin), if any: the policy the gateway answers instead of the
// result's.
type pinnedResult struct {
	result.Result
	Pin *gateway.PinInfo `json:"pin,omitempty"`
}

// activePins returns the active gateway pins by domain, as the HTTP API
// shows them.
func activePins(cmd *cobra.Command, st *store.Store) (map[string]*gateway.PinInfo, error) {
	ps, err := st.Pins(cmd.Context())
	if err != nil {
		return nil, err
	}
	out := map[string]*gateway.PinInfo{}
	now := time.Now()
	for _, p := range ps {
		if p.Active(now) {
			out[p.Domain] = &gateway.PinInfo{Policy: p.Policy, Reason: p.Reason, Until: p.Until, SetAt: p.At, SetBy: p.OSUser, Host: p.Host}
		}
	}
	return out, nil
}

// lookupOne answers one domain; found is false when the cache does not know it.
func lookupOne(cmd *cobra.Command, st *store.Store, a lookupArg) (r result.Result, found bool, err error) {
	r, err = st.Lookup(cmd.Context(), a.ascii)
	if errors.Is(err, store.ErrNotFound) {
		uni := a.unicode
		if uni == a.ascii {
			uni = ""
		}
		return result.Result{Domain: a.ascii, Unicode: uni, Verdict: result.Unknown, Flags: []string{}, Reason: "not in the cache"}, false, nil
	}
	if err != nil {
		return r, false, err
	}
	r.Unicode = cmp.Or(r.Unicode, a.unicode)
	return r, true, nil
}

// lookupTable prints lookup's plain output: a header and aligned columns,
// "-" for an empty cell, so that the columns never shift. Flags are last:
// the only column whose width varies much.
type lookupTable struct {
	tw *tabwriter.Writer
}

func newLookupTable(w io.Writer) *lookupTable {
	t := &lookupTable{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	fmt.Fprintln(t.tw, "DOMAIN\tVERDICT\tSCANNED_AT\tDOMAIN_UNICODE\tFLAGS")
	return t
}

func (t *lookupTable) row(r result.Result) {
	cell := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	scanned := ""
	if !r.ScannedAt.IsZero() {
		scanned = r.ScannedAt.UTC().Format(time.RFC3339)
	}
	uni := ""
	if r.Unicode != r.Domain {
		uni = r.Unicode
	}
	fmt.Fprintf(t.tw, "%s\t%s\t%s\t%s\t%s\n", cell(r.Domain), cell(string(r.Verdict)), cell(scanned), cell(uni), cell(strings.Join(r.Flags, ",")))
}

func (t *lookupTable) flush() error { return t.tw.Flush() }
