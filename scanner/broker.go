package scanner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// IPBroker shares the MX IPs of one run between scanners in several
// processes (several `tlsready scan` workers on one PostgreSQL run), so that
// every MX IP is connected to by exactly one of them: the one holding the
// IP's lease. The others ask it for the probes they need and wait for the
// outcome. Config.IPBroker nil: this scanner probes every IP itself.
//
// Implementations are safe for concurrent use and honour ctx. The scanner
// calls Hold before it would connect to an IP; when Hold is false it calls
// Ask and waits. The process holding leases must answer the requests of the
// others with Scanner.Answer (the broker's own loop does that) for as long
// as the run has work left, also after its own domains are done.
type IPBroker interface {
	// Hold reports whether this scanner may connect to ip: it holds ip's
	// lease, or has just taken it because no live scanner held it. Once
	// true for an ip, it stays true for this scanner while it lives.
	Hold(ctx context.Context, ip netip.Addr) (bool, error)
	// Ask returns the outcome (Scanner.Answer's encoding) of req made by
	// the scanner holding req.IP, waiting until it is there. ok is false
	// when the holder's lease expired before it answered: the scanner
	// then calls Hold again (and may take the IP over).
	Ask(ctx context.Context, req ProbeRequest) (outcome []byte, ok bool, err error)
}

// ProbeRequest is one connection's worth of work on an MX IP, as one
// scanner asks it of the IP's lease holder. Key names it within the run
// (equal requests are made once); see Scanner.Answer.
type ProbeRequest struct {
	IP  netip.Addr
	Key string
}

// Request kinds (the first field of a ProbeRequest's Key).
const (
	reqProbe = "p" // s.probe: p|<attempts seen>|<keepRaw 0/1>|<name>
	reqDANE  = "d" // probeForDANE: d|<sni>
	reqRetry = "r" // retryMissingSTARTTLS: r|<sni>
)

// outcome is the encoding of a probe shared through the broker.
type outcome struct {
	Probe   *result.Probe `json:"probe"`
	Raw     [][]byte      `json:"raw,omitempty"` // Probe.TLS.Raw (not in the Probe's JSON)
	PerName bool          `json:"per_name,omitempty"`
	Due     time.Time     `json:"due,omitzero"`
}

func encodeOutcome(r probeRef) ([]byte, error) {
	o := outcome{Probe: r.probe, PerName: r.perName, Due: r.due}
	if r.probe != nil && r.probe.TLS != nil {
		o.Raw = r.probe.TLS.Raw
	}
	return json.Marshal(o)
}

func decodeOutcome(b []byte) (probeRef, error) {
	var o outcome
	if err := json.Unmarshal(b, &o); err != nil {
		return probeRef{}, fmt.Errorf("scanner: shared probe outcome: %w", err)
	}
	if o.Probe == nil {
		return probeRef{}, errors.New("scanner: shared probe outcome without a probe")
	}
	if o.Probe.TLS != nil {
		o.Probe.TLS.Raw = o.Raw
	}
	return probeRef{probe: o.Probe, perName: o.PerName, due: o.Due}, nil
}

// ErrBadRequest is returned by Answer for a request it does not understand.
var ErrBadRequest = errors.New("scanner: malformed probe request")

// Answer makes the probe req asks for, as this scanner would for one of its
// own domains (sharing it with them), and returns the outcome's encoding
// for the broker to hand to the scanner that asked. Only the holder of
// req.IP's lease calls it.
func (s *Scanner) Answer(ctx context.Context, req ProbeRequest) ([]byte, error) {
	k, err := parseRequestKey(req.Key)
	if err != nil {
		return nil, err
	}
	var ref probeRef
	switch k.kind {
	case reqProbe:
		seen := k.seen
		for {
			ref = s.localProbe(ctx, k.name, req.IP, k.keepRaw)
			// The asker saw a temporary refusal of attempt seen and waited
			// out its back-off: honour it by this process's clock too.
			if ref.probe == nil || ref.due.IsZero() || ref.probe.Attempts > seen {
				break
			}
			if !sleepUntil(ctx, ref.due) {
				return nil, ctx.Err()
			}
		}
	case reqDANE:
		ref.probe = s.localProbeForDANE(ctx, k.name, req.IP)
	case reqRetry:
		ref.probe = s.localRetry(ctx, k.name, req.IP)
	}
	if ref.probe == nil {
		return nil, ctx.Err()
	}
	return encodeOutcome(ref)
}

// requestKey is a ProbeRequest's Key, parsed.
type requestKey struct {
	kind    string
	seen    int // reqProbe: the attempts of the temporary refusal the asker saw
	keepRaw bool
	name    string // the SNI
}

// parseRequestKey parses a Key made by probe, probeForDANE or retryProbe;
// ErrBadRequest for anything else (the keys come from the database).
func parseRequestKey(key string) (requestKey, error) {
	kind, rest, _ := strings.Cut(key, "|")
	k := requestKey{kind: kind}
	switch kind {
	case reqProbe:
		f := strings.SplitN(rest, "|", 3)
		if len(f) != 3 || (f[1] != "0" && f[1] != "1") {
			return k, ErrBadRequest
		}
		seen, err := strconv.Atoi(f[0])
		if err != nil || seen < 0 || seen > 100 {
			return k, ErrBadRequest
		}
		k.seen, k.keepRaw, k.name = seen, f[1] == "1", f[2]
	case reqDANE, reqRetry:
		k.name = rest
	default:
		return k, ErrBadRequest
	}
	if k.name == "" || len(k.name) > 255 {
		return k, ErrBadRequest
	}
	return k, nil
}

func sleepUntil(ctx context.Context, at time.Time) bool {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// brokered gets the probe req asks for: made here when this scanner holds
// the IP (local), else from the holder through the broker. A nil probe:
// ctx ended first. A broker error stops the run (setFatal): a worker that
// cannot reach the shared store must not probe on its own.
func (s *Scanner) brokered(ctx context.Context, req ProbeRequest, local func() probeRef) probeRef {
	b := s.cfg.IPBroker
	if b == nil {
		return local()
	}
	for {
		held, err := b.Hold(ctx, req.IP)
		if err != nil {
			s.brokerFailed(ctx, err)
			return probeRef{}
		}
		if held {
			return local()
		}
		// Waiting for another worker: the domain's slot may serve
		// another domain meanwhile (see lane).
		ln := laneOf(ctx)
		ln.park()
		out, ok, err := b.Ask(ctx, req)
		ln.unpark(ctx)
		if err != nil {
			s.brokerFailed(ctx, err)
			return probeRef{}
		}
		if !ok {
			continue // the holder is gone: take the IP over
		}
		ref, err := decodeOutcome(out)
		if err != nil {
			s.brokerFailed(ctx, err)
			return probeRef{}
		}
		if st := ref.probe.Status; st != result.ProbeConnectFailed && st != result.ProbeTimeout {
			s.reachable.Add(1) // a server answered the run (NetworkWorks)
		}
		return ref
	}
}

// ErrBroker wraps the error of an IPBroker that stopped the run.
var ErrBroker = errors.New("scanner: sharing MX IPs with the other workers failed")

func (s *Scanner) brokerFailed(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return // our own shutdown
	}
	s.setFatal(fmt.Errorf("%w: %w", ErrBroker, err))
	s.stop()
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
