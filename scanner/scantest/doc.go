// Package scantest is a simulated internet for the scanner's tests, `tlsready
// demo` and `make bench`, in the spirit of net/http/httptest: a fake of the
// world outside the scanner that behaves like the real one at the protocol
// level. It holds the servers, a Builder for scenarios and small clients for
// tests (SMTPClient, Query, HTTPClient, CA.Verify); the worlds made with it
// (the demo world, the generated benchmark worlds and their critical paths)
// are package scantest/worlds.
//
//   - DNS: a real miekg/dns server (UDP and TCP on one 127.0.0.1 port) that
//     answers like a validating recursive resolver would: it follows CNAMEs
//     inside the zone, returns NXDOMAIN / NODATA, sets RA, sets AD for
//     answers inside the scenario's "secure" zones when the query asked for
//     DNSSEC (DO bit, RFC 4035 §3.2.3, or the AD bit, RFC 6840 §5.7), honours
//     the EDNS0 UDP payload size (RFC 6891 §6.2.5) with TC and injects faults
//     (SERVFAIL, REFUSED, dropped queries, TC over UDP, wrong ID, wrong question).
//   - SMTP: real TCP line protocol (RFC 5321) with STARTTLS (RFC 3207) and a
//     real crypto/tls handshake, plus hostile behaviours for hardening tests.
//     It never accepts MAIL, RCPT or DATA (502) and counts them.
//   - HTTPS: crypto/tls + net/http servers that serve MTA-STS policies
//     (RFC 8461 §3.3) at /.well-known/mta-sts.txt.
//   - A test CA (ECDSA P-256) that issues every certificate.
//
// Thousands of hosts are told apart by the 127.0.0.0/8 address the client
// dialled: one wildcard TCP listener per protocol serves every address on one
// port (Internet.SMTPPort, Internet.HTTPSPort), so the scanner must be
// configured to dial that port instead of 25/443 and to allow loopback MX
// addresses. This needs an OS that routes all of 127.0.0.0/8 to the loopback
// interface (Linux does; macOS only answers 127.0.0.1 without aliases).
//
// A host that is "down" (an IP without a host, or SMTPHost.Down) cannot
// refuse the connection, because the wildcard listener accepts it: the
// connection is accepted and immediately reset (RST). Clients see a
// successful connect followed by ECONNRESET/EOF before any banner, which is
// "unreachable" in docs/verdicts.md terms, but not ECONNREFUSED.
//
// Latency is simulated by Scenario.RTT, see RTT model on Scenario.
//
// The package imports nothing of ours: it knows no verdicts, only how servers
// behave.
package scantest
