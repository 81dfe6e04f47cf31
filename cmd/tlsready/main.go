// Command tlsready finds out, for a register of e-mail recipients, which
// recipients' mail would cross the internet in plaintext, and answers a mail
// gateway per recipient from its cache. See README.md.
//
// No process-wide GODEBUG changes what the probe observes: old servers that
// Go's crypto/tls refuses (SHA-1 signatures, finite-field DHE) are
// completed by the probe's second TLS stack, as an OpenSSL sender would.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// Exit codes (README "Exit codes").
const (
	exitOK          = 0
	exitFailed      = 1
	exitUsage       = 2
	exitInterrupted = 3 // SIGINT/SIGTERM: what finished is saved; run again to resume
	exitEnvironment = 4 // our own network is broken (port 25 blocked, resolver dead): nothing overwritten
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage error (exit 2).
func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

func run(args []string) int {
	return execute(context.Background(), args, os.Stdout, os.Stderr)
}

// execute runs the command line args with ctx, writing to stdout and stderr,
// and returns the process's exit code. Tests call it in-process.
func execute(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(stderr, "tlsready:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsage(err) {
		return exitUsage
	}
	return exitFailed
}
