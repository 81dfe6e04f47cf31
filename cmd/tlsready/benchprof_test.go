package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// CPU by phase, for the benchmarks: the scan runs under the CPU profiler and
// every sample is charged to the phase of the innermost function on its
// stack that belongs to one (phaseRules). Samples with no such function
// (the collector's background workers, the scheduler, timers) are
// "runtime"; allocation and GC assist inside a phase count for that phase.

// phaseRules, matched against function names (package path and name); the
// first rule a function matches gives its phase.
var phaseRules = []struct{ phase, match string }{
	{"store", "/tlsready/store."},
	{"store", "github.com/mattn/go-sqlite3"},
	{"store", "database/sql."},
	{"ingest", "/tlsready/scanner/register."},
	{"ingest", "main.ingest"},
	{"DNS", "/tlsready/scanner/resolve."},
	{"DNS", "github.com/miekg/dns."},
	{"TLS verify", "smtpprobe.tlsInfo"},
	{"TLS verify", "smtpprobe.judgeChain"},
	{"TLS verify", "smtpprobe.certInfo"},
	{"TLS verify", "smtpprobe.chainKey"},
	{"TLS verify", "smtpprobe.NameMatch"},
	{"TLS verify", "/tlsready/scanner/dane."},
	{"probe", "/tlsready/scanner/smtpprobe."},
	{"probe", "scanner.(*Scanner).connect"},
	{"probe", "scanner.healthDialer"},
	{"classify", "scanner.Classify"},
	{"classify", "scanner.(*Scanner).judge"},
	{"classify", "scanner.(*Scanner).applyPolicies"},
	{"classify", "scanner.daneNextHop"},
	{"classify", "/tlsready/scanner/mtasts."},
	{"classify", "/tlsready/scanner/tlsrpt."},
	{"classify", "/tlsready/scanner/result."},
	{"pipeline", "/tlsready/scanner."},
	{"pipeline", "main."},
}

// phaseOrder is the order phases are printed in.
var phaseOrder = []string{"ingest", "DNS", "probe", "TLS verify", "classify", "store", "pipeline", "runtime"}

func phaseOf(fn string) string {
	for _, r := range phaseRules {
		if strings.Contains(fn, r.match) {
			return r.phase
		}
	}
	return ""
}

// phaseSplit reads a pprof CPU profile (gzipped profile.proto) and returns
// the CPU time charged to each phase.
func phaseSplit(prof []byte) (map[string]time.Duration, error) {
	zr, err := gzip.NewReader(bytes.NewReader(prof))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var (
		strs     []string
		funcName = map[uint64]uint64{}   // function id -> string index
		locFuncs = map[uint64][]uint64{} // location id -> function ids, innermost first
		samples  [][]byte
	)
	err = pbFields(raw, func(field int, v uint64, b []byte) error {
		switch field {
		case 2:
			samples = append(samples, b)
		case 4: // location
			var id uint64
			var fns []uint64
			if err := pbFields(b, func(f int, v uint64, lb []byte) error {
				switch f {
				case 1:
					id = v
				case 4: // line{function_id, line}
					return pbFields(lb, func(f int, v uint64, _ []byte) error {
						if f == 1 {
							fns = append(fns, v)
						}
						return nil
					})
				}
				return nil
			}); err != nil {
				return err
			}
			locFuncs[id] = fns
		case 5: // function
			var id, name uint64
			if err := pbFields(b, func(f int, v uint64, _ []byte) error {
				switch f {
				case 1:
					id = v
				case 2:
					name = v
				}
				return nil
			}); err != nil {
				return err
			}
			funcName[id] = name
		case 6:
			strs = append(strs, string(b))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Sample values of a Go CPU profile: [samples/count, cpu/nanoseconds].
	const cpuValue = 1
	out := map[string]time.Duration{}
	for _, sb := range samples {
		var locs, vals []uint64
		if err := pbFields(sb, func(f int, v uint64, b []byte) error {
			switch f {
			case 1:
				if b != nil {
					return pbPacked(b, &locs)
				}
				locs = append(locs, v)
			case 2:
				if b != nil {
					return pbPacked(b, &vals)
				}
				vals = append(vals, v)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		if len(vals) <= cpuValue {
			continue
		}
		phase := "runtime"
	stack:
		for _, l := range locs { // innermost first
			for _, f := range locFuncs[l] {
				if n := funcName[f]; int(n) < len(strs) {
					if p := phaseOf(strs[n]); p != "" {
						phase = p
						break stack
					}
				}
			}
		}
		out[phase] += time.Duration(vals[cpuValue])
	}
	return out, nil
}

var errPB = errors.New("profile: malformed protobuf")

// pbFields calls fn for each field of a protobuf message: varints with v,
// length-delimited fields with b (fixed-size fields are skipped).
func pbFields(msg []byte, fn func(field int, v uint64, b []byte) error) error {
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		if n <= 0 {
			return errPB
		}
		msg = msg[n:]
		field, wire := int(key>>3), key&7
		switch wire {
		case 0:
			v, n := binary.Uvarint(msg)
			if n <= 0 {
				return errPB
			}
			msg = msg[n:]
			if err := fn(field, v, nil); err != nil {
				return err
			}
		case 1:
			if len(msg) < 8 {
				return errPB
			}
			msg = msg[8:]
		case 2:
			l, n := binary.Uvarint(msg)
			if n <= 0 || uint64(len(msg)-n) < l {
				return errPB
			}
			b := msg[n : n+int(l)]
			msg = msg[n+int(l):]
			if err := fn(field, 0, b); err != nil {
				return err
			}
		case 5:
			if len(msg) < 4 {
				return errPB
			}
			msg = msg[4:]
		default:
			return errPB
		}
	}
	return nil
}

func pbPacked(b []byte, out *[]uint64) error {
	for len(b) > 0 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return errPB
		}
		*out = append(*out, v)
		b = b[n:]
	}
	return nil
}

// formatPhases prints µs per domain by phase, scaling the profile's
// shares to the measured CPU (the profiler samples; rusage counts).
func formatPhases(w io.Writer, split map[string]time.Duration, cpu time.Duration, domains int) {
	var total time.Duration
	for _, d := range split {
		total += d
	}
	if total == 0 || domains == 0 {
		return
	}
	fmt.Fprintf(w, "by phase:    (CPU profile: each sample charged to the innermost function of a phase on its stack; shares of the profile, scaled to user+sys)\n")
	for _, p := range phaseOrder {
		share := float64(split[p]) / float64(total)
		fmt.Fprintf(w, "             %-11s %7.1f µs/domain  %5.1f%%\n", p, share*float64(cpu.Microseconds())/float64(domains), 100*share)
	}
}
