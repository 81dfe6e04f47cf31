package main

import "github.com/spf13/cobra"

// extraCommands lists the subcommands. Each lives in its own file.
func extraCommands() []*cobra.Command {
	return []*cobra.Command{newScanCmd(), newLookupCmd(), newCheckCmd(), newDemoCmd(), newReportCmd(), newExportCmd(), newServeCmd(), newStatusCmd(), newMigrateCmd(), newPinCmd(), newDiffCmd()}
}
