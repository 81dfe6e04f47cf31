package main

import "github.com/spf13/cobra"

// subcommands lists the subcommands of tlsready. Each lives in its own file.
func subcommands() []*cobra.Command {
	return []*cobra.Command{newScanCmd(), newLookupCmd(), newCheckCmd(), newDemoCmd(), newReportCmd(), newExportCmd(), newServeCmd(), newStatusCmd(), newMigrateCmd(), newPinCmd(), newDiffCmd()}
}
