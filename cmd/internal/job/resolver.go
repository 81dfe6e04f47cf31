package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/tlsready/tlsready/scanner/resolve"
)

// CheckResolver asks the resolver the root NS question (resolve.Client.Ping)
// before the first domain: a resolver that is silent, not listening or
// refuses us would make every domain a dns-error, so that is ErrNetworkDown
// (our side is broken) at any register size, with nothing scanned; a
// cancelled ctx is ErrInterrupted. The running check of the scanner
// (scanner.ErrResolverDead) still watches the rest of the run. servers
// name the resolver in the error.
func CheckResolver(ctx context.Context, res *resolve.Client, servers []string, log *slog.Logger) error {
	status, err := res.Ping(ctx)
	if ctx.Err() != nil {
		return mark(ErrInterrupted, errors.New("interrupted while checking the DNS resolver"))
	}
	if err != nil {
		return mark(ErrNetworkDown, fmt.Errorf(
			"the DNS resolver %s does not answer (%v): every domain would be a dns-error; check --resolver (default: the nameservers of /etc/resolv.conf). Nothing was scanned",
			strings.Join(servers, ", "), err))
	}
	switch status {
	case resolve.StatusOK:
		log.Debug("resolver answers", "servers", servers)
	case resolve.StatusServfail:
		log.Warn("the resolver answers but cannot resolve the root zone (SERVFAIL for the root NS records); unless it is a lab resolver for its own zones, expect dns-error verdicts", "servers", servers)
	default: // NXDOMAIN or NODATA for the root: a lab resolver serving only its zones
		log.Debug("resolver answers, without the root NS records (a lab resolver?)", "servers", servers, "status", status)
	}
	return nil
}
