package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/result"
)

func newCheckCmd() *cobra.Command {
	var f scanFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check DOMAIN...",
		Short: "Scan domains live, without a database, and show the details",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.validate(cmd.Context()); err != nil {
				return err
			}
			// Every argument is checked before the first query.
			domains := make([]lookupArg, len(args))
			for i, arg := range args {
				a, err := parseLookupArg(arg)
				if err != nil {
					return err
				}
				domains[i] = a
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			f.logOut = cmd.ErrOrStderr()
			log := f.logger()
			if !f.quiet { // progress on a slow host: what each MX IP owes us
				watch := newProbeWatch(f.dialer, cmd.ErrOrStderr())
				defer watch.close()
				f.dialer = watch
			}
			res, sc, err := f.build(ctx, log, nil)
			if err != nil {
				return err
			}
			defer res.Close()
			defer sc.Close()
			view := checkView{trustAD: res.TrustsAD(), noPolicy: f.noPolicy}
			out := cmd.OutOrStdout()
			for _, a := range domains {
				r, err := sc.Check(ctx, a.ascii)
				switch {
				case ctx.Err() != nil:
					return &exitError{code: exitInterrupted, err: errors.New("interrupted")}
				case errors.Is(err, scanner.ErrPort25Blocked) || errors.Is(err, scanner.ErrResolverDead):
					return &exitError{code: exitEnvironment, err: err}
				case err != nil:
					return err
				}
				r.Unicode = a.unicode
				if asJSON {
					if err := json.NewEncoder(out).Encode(r); err != nil {
						return err
					}
					continue
				}
				printCheck(out, r, view)
			}
			return nil
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().Lookup("quiet").Usage = "no progress on stderr (the IP being probed, what a slow host is waited for); the results are still printed"
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per domain")
	return cmd
}

// checkView is what printCheck needs to know beside the result.
type checkView struct {
	trustAD  bool // the resolver's AD bit is trusted: an answer without it is insecure
	noPolicy bool // --no-policy: MTA-STS, DANE and TLSRPT not looked at
}

// printCheck prints what a mail administrator wants to see, and only what
// was observed: what was not looked at or could not be found out says so.
func printCheck(w io.Writer, r result.Result, v checkView) {
	name := r.Domain
	if r.Unicode != "" && r.Unicode != r.Domain {
		name = r.Unicode + " (" + r.Domain + ")"
	}
	fmt.Fprintf(w, "%s: %s\n", name, r.Verdict)
	if len(r.Flags) > 0 {
		fmt.Fprintf(w, "  flags: %s\n", strings.Join(r.Flags, ", "))
	}
	if r.Reason != "" {
		fmt.Fprintf(w, "  why:   %s\n", r.Reason)
	}
	mxFailed := resolve.Status(r.DNSStatus).Temporary()
	fmt.Fprintf(w, "  DNS:   %s, %s", r.DNSStatus, dnssecText(r, v, mxFailed))
	if r.ImplicitMX {
		fmt.Fprint(w, ", implicit MX (no MX records; the domain's own address)")
	}
	if r.NullMX {
		fmt.Fprint(w, ", null MX")
	}
	fmt.Fprintln(w)
	for _, h := range r.MX {
		fmt.Fprintf(w, "  MX %d %s", h.Preference, h.Name)
		if h.CNAME != "" {
			fmt.Fprintf(w, " (alias of %s)", h.CNAME)
		}
		if h.DNSStatus != "" && h.DNSStatus != "ok" {
			fmt.Fprintf(w, " [address lookup: %s]", h.DNSStatus)
		}
		if len(h.Flags) > 0 {
			fmt.Fprintf(w, " [%s]", strings.Join(h.Flags, ", "))
		}
		fmt.Fprintln(w)
		if h.TLSA != nil {
			fmt.Fprintf(w, "    TLSA %s: %s, secure=%v, %d record(s)\n", h.TLSA.Name, h.TLSA.Status, h.TLSA.Secure, len(h.TLSA.Records))
			for _, t := range h.TLSA.Records {
				fmt.Fprintf(w, "      %d %d %d %s\n", t.Usage, t.Selector, t.MatchingType, t.Data)
			}
		}
		for _, a := range h.Addrs {
			fmt.Fprintf(w, "    %s", a.IP)
			if a.Skipped != "" {
				fmt.Fprintf(w, ": not probed (%s)\n", a.Skipped)
				continue
			}
			p := a.Probe
			fmt.Fprintf(w, ": %s", p.Status)
			if p.Error != "" {
				fmt.Fprintf(w, " (%s)", p.Error)
			}
			if p.Attempts > 1 {
				fmt.Fprintf(w, " [attempt %d, after temporary refusals]", p.Attempts)
			}
			fmt.Fprintln(w)
			if p.Banner != "" { // the first line as received, code included
				fmt.Fprintf(w, "      banner:   %s\n", p.Banner)
			}
			if len(p.EHLO) > 0 {
				fmt.Fprintf(w, "      EHLO:     %s\n", strings.Join(p.EHLO, " "))
			}
			if p.EHLOCode != 0 && p.EHLOCode != 250 {
				fmt.Fprintf(w, "      EHLO reply: %d\n", p.EHLOCode)
			}
			if p.Reachable { // EHLO answered: the keyword list was observed
				fmt.Fprintf(w, "      STARTTLS: offered=%v", p.STARTTLSOffered)
				if p.STARTTLSReply != "" {
					fmt.Fprintf(w, ", reply %q", p.STARTTLSReply)
				}
				fmt.Fprintln(w)
			}
			if t := p.TLS; t != nil {
				fmt.Fprintf(w, "      TLS:      %s, %s", t.Version, t.CipherSuite)
				switch {
				case t.Stack == result.StackFallback:
					fmt.Fprint(w, " (only with the second, OpenSSL-compatible TLS stack)")
				case t.Legacy:
					fmt.Fprint(w, " (only with conservative settings)")
				}
				fmt.Fprintln(w)
				for i, c := range t.Certs {
					fmt.Fprintf(w, "      cert %d:   subject %s\n", i, c.Subject)
					fmt.Fprintf(w, "                issuer  %s\n", c.Issuer)
					fmt.Fprintf(w, "                valid   %s .. %s\n", c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
					if len(c.DNSNames) > 0 && i == 0 {
						fmt.Fprintf(w, "                names   %s\n", strings.Join(c.DNSNames, ", "))
					}
				}
				fmt.Fprintf(w, "      verify:   chain trusted=%v, expired=%v, self-signed=%v, names %s=%v, PKIX-valid=%v",
					t.ChainTrusted, t.Expired, t.SelfSigned, h.Name, a.NameMatch, a.PKIXValid)
				if t.ChainError != "" {
					fmt.Fprintf(w, " (%s)", t.ChainError)
				}
				fmt.Fprintln(w)
				if a.DANEMatch != nil {
					fmt.Fprintf(w, "      DANE:     match=%v\n", *a.DANEMatch)
				}
			} else if p.Alert != "" {
				fmt.Fprintf(w, "      TLS alert: %s\n", p.Alert)
			}
			if len(a.Flags) > 0 {
				fmt.Fprintf(w, "      flags:    %s\n", strings.Join(a.Flags, ", "))
			}
		}
	}
	fmt.Fprintf(w, "  MTA-STS: %s\n", stsText(r, v, mxFailed))
	fmt.Fprintf(w, "  TLSRPT:  %s\n", tlsrptText(r, v, mxFailed))
}

// dnssecText says what is known of the MX RRset's DNSSEC state. A validating
// resolver answers a bogus signature with SERVFAIL, so a failed lookup is
// "unknown", never "insecure"; without a trusted AD bit nothing is known.
func dnssecText(r result.Result, v checkView, mxFailed bool) string {
	switch {
	case mxFailed:
		return "MX RRset DNSSEC unknown (the lookup failed; a validating resolver answers SERVFAIL to a bogus signature too)"
	case r.MXSecure:
		return "MX RRset DNSSEC secure"
	case !v.trustAD:
		return "MX RRset DNSSEC not judged (the resolver's AD bit is not trusted; see --trust-ad)"
	}
	return "MX RRset DNSSEC insecure"
}

// policyUnlooked says why the policy records were not looked at, or "".
func policyUnlooked(r result.Result, v checkView, mxFailed bool) string {
	switch {
	case v.noPolicy:
		return "not looked at (--no-policy)"
	case mxFailed:
		return "unknown (lookup failed)" // the MX lookup: the DNS line says how
	case r.NullMX || len(r.MX) == 0:
		return "not looked at (no mail hosts)"
	}
	return ""
}

func stsText(r result.Result, v checkView, mxFailed bool) string {
	p := r.MTASTS
	switch {
	case p != nil:
		s := fmt.Sprintf("id=%s mode=%s mx=%s max_age=%d", p.RecordID, p.Mode, strings.Join(p.MX, ","), p.MaxAge)
		if p.Error != "" {
			s += " error: " + p.Error
		}
		if slices.Contains(r.Flags, result.FlagSTSCached) {
			s += " (cached policy)"
		}
		return s
	case slices.Contains(r.Flags, result.FlagSTSLookupFailed):
		return "unknown (lookup failed)"
	}
	if why := policyUnlooked(r, v, mxFailed); why != "" {
		return why
	}
	return "none"
}

func tlsrptText(r result.Result, v checkView, mxFailed bool) string {
	t := r.TLSRPT
	switch {
	case t != nil && len(t.RUA) > 0:
		return strings.Join(t.RUA, ", ")
	case t != nil && t.Error != "":
		return "none (" + t.Error + ")"
	case slices.Contains(r.Flags, result.FlagTLSRPTLookupFail):
		return "unknown (lookup failed)"
	}
	if why := policyUnlooked(r, v, mxFailed); why != "" {
		return why
	}
	return "none"
}
