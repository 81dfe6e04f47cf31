package main

import (
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/tlsready/tlsready/scanner/result"
)

// flagValues are the values shell completion offers for a flag, by flag
// name, on every command that has the flag (cobra's `tlsready completion
// bash|zsh|fish|powershell` writes the script; README "Shell completion").
var flagValues = map[string][]string{
	"format":           {"html", "table", "csv", "json"}, // report
	"lang":             {"ja", "en"},                     // report, demo
	"trust-ad":         {"auto", "true", "false"},        // scan, check, serve
	"log-format":       {"text", "json"},                 // scan, check, serve
	"verified-policy":  {"verify", "may"},                // serve
	"encrypted-policy": {"encrypt", "may"},               // serve
}

// registerCompletions registers value completion for the flags of
// flagValues and for --verdict (a comma-separated list) on every command.
func registerCompletions(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for name, values := range flagValues {
			if c.Flags().Lookup(name) != nil {
				_ = c.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
			}
		}
		if c.Flags().Lookup("verdict") != nil {
			_ = c.RegisterFlagCompletionFunc("verdict", completeVerdicts)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// completeVerdicts completes the last word of a comma-separated verdict
// list, without the verdicts already given.
func completeVerdicts(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	given := strings.Split(toComplete, ",")
	prefix := strings.Join(given[:len(given)-1], ",")
	if prefix != "" {
		prefix += ","
	}
	var out []string
	for _, v := range append(slices.Clone(result.Verdicts), result.Unknown) {
		if !slices.Contains(given[:len(given)-1], string(v)) {
			out = append(out, prefix+string(v))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}
