package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/gateway"
	"github.com/tlsready/tlsready/store"
)

func newExportPolicyCmd() *cobra.Command {
	var (
		db, format, out                 string
		verifiedPolicy, encryptedPolicy string
		sendmailDANE                    string
		staleAfter                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "policy --db FILE --format postfix|sendmail|exim [--out FILE]",
		Short: "A static TLS policy map for Postfix, sendmail or Exim from the same mapping as serve's socketmap",
		Long: `Write, for every domain the socketmap of tlsready serve would answer now,
its TLS policy in the MTA's own form:

  postfix   "domain<TAB>policy" lines (smtp_tls_policy_maps), usable as
            texthash:FILE or, after postmap, as lmdb:FILE (or hash:FILE)
  sendmail  an access map source: "TLS_Rcpt:domain<TAB>TEMP+VERIFY:128"
            (dane-only, see --sendmail-dane; secure; verify) or
            "TEMP+ENCR:128" (encrypt); build it with makemap
  exim      an lsearch file: "domain: dane|secure|verify|encrypt", for the
            smtp transport conditions in README

A domain Postfix would send with "may" gets no sendmail or Exim entry
(opportunistic TLS is their default). The mapping, --verified-policy,
--encrypted-policy and --stale-after are serve's: a domain without a policy,
or whose result is older than --stale-after, is left out (Postfix applies its
default level). The map is what the database says when it is written: write
it again after every scan (results also grow stale with time). Domains are
A-labels. No personal data: --out is created with mode 0644.

  tlsready export policy --db tlsready.db --format postfix --out /etc/postfix/tlsready_policy
  postmap lmdb:/etc/postfix/tlsready_policy
  # main.cf: smtp_tls_policy_maps = lmdb:/etc/postfix/tlsready_policy
  tlsready export policy --db tlsready.db --format sendmail --out /etc/mail/tlsready_access
  tlsready export policy --db tlsready.db --format exim --out /etc/exim4/tlsready_policy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case db == "":
				return usageErr("--db is required")
			case format != gateway.FormatPostfix && format != gateway.FormatSendmail && format != gateway.FormatExim:
				return usageErr("--format %q: the formats are: postfix, sendmail, exim", format)
			case sendmailDANE != "encrypt" && sendmailDANE != "verify":
				return usageErr("--sendmail-dane must be encrypt or verify")
			case staleAfter <= 0:
				return usageErr("--stale-after must be positive")
			case verifiedPolicy != gateway.PolicyVerify && verifiedPolicy != gateway.PolicyMay:
				return usageErr("--verified-policy must be verify or may")
			case encryptedPolicy != gateway.PolicyEncrypt && encryptedPolicy != gateway.PolicyMay:
				return usageErr("--encrypted-policy must be encrypt or may")
			}
			st, err := openExisting(cmd.Context(), db, true)
			if err != nil {
				return err
			}
			defer st.Close()
			srv, err := gateway.New(gateway.Config{Store: st, StaleAfter: staleAfter,
				VerifiedPolicy: verifiedPolicy, EncryptedPolicy: encryptedPolicy})
			if err != nil {
				return usageErr("%v", err)
			}
			if _, err := srv.Refresh(cmd.Context()); err != nil {
				return err
			}
			now := time.Now().UTC()
			opts := gateway.MapOptions{SendmailDANEVerify: sendmailDANE == "verify"}
			header := []string{
				fmt.Sprintf("%s written by tlsready %s export policy at %s", formatTitle[format], version, now.Format(time.RFC3339)),
				fmt.Sprintf("from %s (--verified-policy %s, --encrypted-policy %s, --stale-after %s);", store.RedactURL(db), verifiedPolicy, encryptedPolicy, staleAfter),
				"the socketmap of tlsready serve answers the same now. Write it again after every scan.",
			}
			// Which run: the map holds each domain's latest result, so
			// name the latest finished run (and any run in progress).
			runs, err := st.Runs(cmd.Context())
			if err != nil {
				return err
			}
			var lastDone, running *store.Run
			for i := range runs {
				r := &runs[i]
				if r.Status == store.RunFinished && (lastDone == nil || r.ID > lastDone.ID) {
					lastDone = r
				}
				if r.Status == store.RunRunning && (running == nil || r.ID > running.ID) {
					running = r
				}
			}
			runLine := "Results: each domain's latest; no finished run yet"
			if lastDone != nil {
				runLine = fmt.Sprintf("Results: each domain's latest; the last finished run is %d (finished %s)", lastDone.ID, lastDone.FinishedAt.UTC().Format(time.RFC3339))
			}
			if running != nil {
				runLine += fmt.Sprintf("; run %d is in progress (started %s)", running.ID, running.StartedAt.UTC().Format(time.RFC3339))
			}
			header = append(header, runLine+".")
			switch format {
			case gateway.FormatSendmail:
				header = append(header, fmt.Sprintf(formatMapping[format], gateway.SendmailAccess(gateway.PolicyDANEOnly, opts)))
			case gateway.FormatExim:
				header = append(header, formatMapping[format])
			}
			var n int
			write := func(w io.Writer) (err error) {
				n, err = srv.WriteMap(w, format, header, opts)
				return err
			}
			if toFile, err := writeOut(cmd.OutOrStdout(), out, 0o644, write); err != nil || !toFile {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "tlsready: wrote %d policy entries to %s\n", n, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL (opened read-only)")
	f.StringVar(&format, "format", "postfix", "map format: postfix (texthash/lmdb source), sendmail (access map source for makemap) or exim (lsearch file)")
	f.StringVar(&sendmailDANE, "sendmail-dane", "encrypt", "sendmail entry for dane domains: encrypt (TEMP+ENCR:128) or verify (TEMP+VERIFY:128, only for a sendmail built with DANE and run with O DANE=true)")
	f.StringVar(&out, "out", "", "output file, created 0644 (default: standard output)")
	f.DurationVar(&staleAfter, "stale-after", gateway.DefaultStaleAfter, "results older than this are left out (as serve's socketmap answers not found)")
	f.StringVar(&verifiedPolicy, "verified-policy", gateway.PolicyVerify, `Postfix policy for "verified" domains: verify or may (as serve)`)
	f.StringVar(&encryptedPolicy, "encrypted-policy", gateway.PolicyEncrypt, `Postfix policy for "encrypted" domains: encrypt or may (as serve)`)
	return cmd
}

// formatTitle names each map in its header.
var formatTitle = map[string]string{
	gateway.FormatPostfix:  "Postfix smtp_tls_policy_maps",
	gateway.FormatSendmail: "sendmail access map (TLS_Rcpt, build with makemap)",
	gateway.FormatExim:     "Exim lsearch TLS policy file",
}

// formatMapping says, in the header, how the socketmap's Postfix policies
// became this format's entries.
var formatMapping = map[string]string{
	gateway.FormatSendmail: "Mapping: dane-only -> %s, secure and verify -> TEMP+VERIFY:128, encrypt -> TEMP+ENCR:128, may -> none.",
	gateway.FormatExim:     "Mapping: dane-only -> dane, secure -> secure, verify -> verify, encrypt -> encrypt, may -> none.",
}
