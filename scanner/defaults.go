package scanner

import (
	"time"

	"github.com/tlsready/tlsready/scanner/smtpprobe"
)

// Defaults of a scan, in one place: Config's zero values, the flags of
// tlsready scan, check and serve --live, and cmd/internal/job use these.
const (
	// DefaultConcurrency is how many domains work at once.
	DefaultConcurrency = 200
	// DefaultRate is how many new SMTP connections are made per second,
	// globally.
	DefaultRate = 20
	// DefaultMaxMX is how many MX hosts of a domain are looked at.
	DefaultMaxMX = 10
	// DefaultMaxIPs is how many addresses of an MX host are probed.
	DefaultMaxIPs = 4
	// DefaultProbeTimeout is the deadline of one MX IP probe in a scan
	// (connect, banner, EHLO, STARTTLS, handshake, retry).
	DefaultProbeTimeout = smtpprobe.DefaultTimeout
	// DefaultLiveProbeTimeout is that deadline in an on-demand check made
	// while someone waits for the answer (serve --live).
	DefaultLiveProbeTimeout = 60 * time.Second
)
