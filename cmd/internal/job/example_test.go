package job_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/tlsready/tlsready/cmd/internal/job"
	"github.com/tlsready/tlsready/scanner"
	"github.com/tlsready/tlsready/scanner/resolve"
	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// A scan of a register into a SQLite database, as tlsready scan makes it
// with its default flags (but without progress or memory settings).
func Example() {
	servers, err := resolve.SystemServers("/etc/resolv.conf")
	if err != nil {
		fmt.Println(err)
		return
	}
	cfg := job.Config{
		Input:       "register.csv.gz",
		DB:          "tlsready.db",
		RescanAfter: job.DefaultRescanAfter,
		Resolver:    resolve.Config{Servers: servers},
		Scanner: scanner.Config{
			// The operator's fully qualified name, with forward-confirmed
			// reverse DNS (README "The EHLO name").
			Probe: smtpprobe.Config{HELO: "scanner.example.org", Timeout: scanner.DefaultProbeTimeout},
		},
		Version: "example",
		Log:     slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
	sum, err := job.Run(context.Background(), cfg)
	switch {
	case errors.Is(err, job.ErrInterrupted):
		fmt.Println("interrupted: the same Config resumes the run")
	case errors.Is(err, job.ErrNetworkDown):
		fmt.Println("this network cannot scan; nothing cached was overwritten:", err)
	case err != nil:
		fmt.Println(err)
	default:
		for v, c := range sum.Verdicts {
			fmt.Printf("%s: %d domains, %d citizens\n", v, c[0], c[1])
		}
	}
}
