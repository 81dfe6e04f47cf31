package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "tlsready",
		Short:         "Recipient TLS-readiness scanner: which citizens would receive plaintext mail",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// -v is --verbose wherever it exists (scan, check, serve); the version
	// is --version, at the top only, without a shorthand.
	root.Flags().Bool("version", false, "print the version and exit")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if c == root && strings.Contains(err.Error(), "shorthand flag: 'v'") {
			return usageErr("-v is --verbose (of scan, check and serve), not --version: tlsready --version prints the version")
		}
		return usageErr("%v (see %s --help)", err, c.CommandPath())
	})
	root.AddCommand(subcommands()...)
	registerCompletions(root)
	return root
}

// isUsage reports whether err is one of cobra's own usage errors
// (unknown command, bad argument count), which carry no type.
func isUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown command") || strings.Contains(s, "arg(s)") ||
		strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "required flag")
}
