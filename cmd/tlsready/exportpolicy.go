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
		staleAfter                      time.Duration
	)
	cmd := &cobra.Command{
		Use:   "policy --db FILE --format postfix [--out FILE]",
		Short: "A static Postfix TLS policy map (smtp_tls_policy_maps) from the same mapping as serve's socketmap",
		Long: `Write, for every domain the socketmap of tlsready serve would answer now,
its Postfix TLS policy: "domain<TAB>policy" lines, usable as texthash:FILE or,
after postmap, as lmdb:FILE (or hash:FILE). The mapping, --verified-policy,
--encrypted-policy and --stale-after are serve's: a domain without a policy,
or whose result is older than --stale-after, is left out (Postfix applies its
default level). The map is what the database says when it is written: write
it again after every scan (results also grow stale with time). Domains are
A-labels. No personal data: --out is created with mode 0644.

  tlsready export policy --db tlsready.db --format postfix --out /etc/postfix/tlsready_policy
  postmap lmdb:/etc/postfix/tlsready_policy
  # main.cf: smtp_tls_policy_maps = lmdb:/etc/postfix/tlsready_policy`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case db == "":
				return usageErr("--db is required")
			case format != "postfix":
				return usageErr("--format %q: the formats are: postfix", format)
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
			header := []string{
				fmt.Sprintf("Postfix smtp_tls_policy_maps written by tlsready %s export policy at %s", version, now.Format(time.RFC3339)),
				fmt.Sprintf("from %s (--verified-policy %s, --encrypted-policy %s, --stale-after %s);", store.RedactURL(db), verifiedPolicy, encryptedPolicy, staleAfter),
				"the socketmap of tlsready serve answers the same now. Write it again after every scan.",
			}
			var n int
			write := func(w io.Writer) (err error) {
				n, err = srv.WritePostfixMap(w, header)
				return err
			}
			if out == "" || out == "-" {
				return write(cmd.OutOrStdout())
			}
			if err := writeFileAtomic(out, 0o644, write); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "tlsready: wrote %d policy entries to %s\n", n, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&db, "db", "", "database: SQLite file or postgres:// URL (opened read-only)")
	f.StringVar(&format, "format", "postfix", "map format: postfix (texthash/lmdb source)")
	f.StringVar(&out, "out", "", "output file, created 0644 (default: standard output)")
	f.DurationVar(&staleAfter, "stale-after", gateway.DefaultStaleAfter, "results older than this are left out (as serve's socketmap answers not found)")
	f.StringVar(&verifiedPolicy, "verified-policy", gateway.PolicyVerify, `Postfix policy for "verified" domains: verify or may (as serve)`)
	f.StringVar(&encryptedPolicy, "encrypted-policy", gateway.PolicyEncrypt, `Postfix policy for "encrypted" domains: encrypt or may (as serve)`)
	return cmd
}
