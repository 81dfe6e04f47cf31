package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/scanner/register"
	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

func newLookupCmd() *cobra.Command {
	var db string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "lookup --db FILE [--json] DOMAIN|ADDRESS...",
		Short: "Answer from the cache: the verdict of each domain (an address counts for its domain)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if db == "" {
				return usageErr("--db is required")
			}
			st, err := store.Open(cmd.Context(), db, store.Options{ReadOnly: true})
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			enc := json.NewEncoder(out)
			for _, arg := range args {
				r, err := lookupOne(cmd, st, arg)
				if err != nil {
					return err
				}
				if asJSON {
					if err := enc.Encode(r); err != nil {
						return err
					}
					continue
				}
				printLookup(out, r)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&db, "db", "", "database file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

// lookupOne answers one argument. The local part of an address is dropped at
// once: it is never printed or logged.
func lookupOne(cmd *cobra.Command, st *store.Store, arg string) (result.Result, error) {
	d := arg
	if i := strings.LastIndexByte(arg, '@'); i >= 0 {
		d = arg[i+1:]
	}
	ascii, uni, err := register.NormalizeDomain(d)
	if err != nil {
		return result.Result{Domain: strings.ToLower(d), Verdict: result.Unknown, Flags: []string{}, Reason: "not a valid domain name"}, nil
	}
	r, err := st.Lookup(cmd.Context(), ascii)
	if errors.Is(err, store.ErrNotFound) {
		return result.Result{Domain: ascii, Unicode: uni, Verdict: result.Unknown, Flags: []string{}, Reason: "not in the cache"}, nil
	}
	if err != nil {
		return r, err
	}
	if r.Unicode == "" {
		r.Unicode = uni
	}
	return r, nil
}

func printLookup(w io.Writer, r result.Result) {
	name := r.Domain
	if r.Unicode != "" && r.Unicode != r.Domain {
		name = r.Unicode + " (" + r.Domain + ")"
	}
	fmt.Fprintf(w, "%s\t%s", name, r.Verdict)
	if len(r.Flags) > 0 {
		fmt.Fprintf(w, "\t%s", strings.Join(r.Flags, ","))
	}
	if !r.ScannedAt.IsZero() {
		fmt.Fprintf(w, "\tscanned %s", r.ScannedAt.Format(time.RFC3339))
	}
	fmt.Fprintln(w)
}
