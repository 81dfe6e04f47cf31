package report

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/tlsready/tlsready/report/internal/storedjson"
)

// csvReader makes the CSV export's records from stored results in one pass
// over their JSON, keeping only what the CSV shows: what newRecord makes of
// decodeStored's result with withMX false, without building that result
// (most of an export's time is spent decoding). It reads results as
// json.Marshal writes them. For anything else — a key that matches a field
// only case-insensitively, a field given twice, invalid JSON, a value of
// the wrong type — it gives up, and the caller decodes the result in full
// (which also gives the error, if there is one). TestCSVReader and
// FuzzCSVReader check it against decodeStored and newRecord.
//
// A csvReader is used by one goroutine at a time.
type csvReader struct {
	in    interner
	d     *storedjson.Decoder
	hosts []csvHost

	// Of the result being read:
	scanned   time.Time
	notAfter  time.Time // earliest leaf certificate expiry, zero when none
	reason    string
	mode      string
	mxSecure  bool
	problems  []string // cert-* flags
	versions  []string // TLS versions
	ips       int
	reachable int
	tls       int
	tlsaHosts int
}

type csvHost struct {
	pref uint16
	name string
}

// errGiveUp: the result is not read here (see csvReader).
var errGiveUp = errors.New("report: result left to the full decoder")

// record fills rec, made by newRecord without a stored result, from raw;
// false when it gives up (rec is then unchanged).
func (x *csvReader) record(raw []byte, rec *DomainRecord) bool {
	if x.in == nil {
		x.in = interner{}
	}
	x.d = storedjson.NewDecoder(raw, x.in)
	x.hosts, x.problems, x.versions = x.hosts[:0], x.problems[:0], x.versions[:0]
	x.scanned, x.notAfter, x.reason, x.mode, x.mxSecure = time.Time{}, time.Time{}, "", "", false
	x.ips, x.reachable, x.tls, x.tlsaHosts = 0, 0, 0, 0
	if err := x.fields(resultFields, x.resultField); err != nil || x.d.End() != nil {
		return false
	}
	rec.MXSecure = x.mxSecure
	rec.Reason = x.reason
	if !x.scanned.IsZero() {
		t := x.scanned.UTC()
		rec.ScannedAt = &t
	}
	rec.MTASTSMode = x.mode
	slices.SortStableFunc(x.hosts, func(a, b csvHost) int { return int(a.pref) - int(b.pref) })
	rec.MXHosts = make([]string, len(x.hosts))
	for i, h := range x.hosts {
		rec.MXHosts[i] = h.name
	}
	rec.TLSAHosts, rec.IPs, rec.IPsReachable, rec.IPsTLS = x.tlsaHosts, x.ips, x.reachable, x.tls
	rec.TLSVersions = append(rec.TLSVersions, x.versions...)
	slices.Sort(rec.TLSVersions)
	rec.CertProblems = append(rec.CertProblems, x.problems...)
	slices.Sort(rec.CertProblems)
	if !x.notAfter.IsZero() {
		na := x.notAfter
		rec.CertNotAfter = &na
	}
	return true
}

// fields reads an object (null: one without keys) of the fields of fs,
// calling field with the index of each; other keys are skipped. A key that
// matches a field only case-insensitively, or a field given twice, gives
// up: encoding/json's rules for them are the full decoder's business.
func (x *csvReader) fields(fs *storedjson.FieldSet, field func(f int) error) error {
	var seen uint64
	return x.d.Object(func(key []byte) error {
		f, exact := fs.Match(key)
		switch {
		case f < 0:
			return x.d.Skip()
		case !exact || seen&(1<<f) != 0:
			return errGiveUp
		}
		seen |= 1 << f
		return field(f)
	})
}

func (x *csvReader) resultField(f int) error {
	d := x.d
	switch f {
	case 0, 1: // domain_unicode (derived from the domain), verdict (the run's)
		return d.CheckString()
	case 2:
		return x.certFlags()
	case 3:
		return d.Time(&x.scanned)
	case 4:
		b, ok, err := d.Bytes()
		if ok {
			x.reason = string(b)
		}
		return err
	case 5:
		return d.Bool(&x.mxSecure)
	case 6:
		return d.Array(x.host)
	case 7:
		return x.fields(stsFields, func(int) error { return storedjson.DecodeString(d, &x.mode, true) })
	}
	return d.Skip()
}

// certFlags reads a list of flags and keeps the cert-* ones.
func (x *csvReader) certFlags() error {
	return x.d.Array(func() error {
		b, ok, err := x.d.Bytes()
		if ok && bytes.HasPrefix(b, []byte("cert-")) && !slices.Contains(x.problems, string(b)) {
			x.problems = append(x.problems, x.in.String(b))
		}
		return err
	})
}

func (x *csvReader) host() error {
	var h csvHost
	err := x.fields(hostFields, func(f int) error {
		d := x.d
		switch f {
		case 0:
			return storedjson.DecodeString(d, &h.name, true)
		case 1:
			return d.Uint16(&h.pref)
		case 2:
			var secure bool
			return d.Bool(&secure)
		case 3:
			return x.certFlags()
		case 4:
			return x.tlsa()
		case 5:
			return d.Array(x.addr)
		}
		return d.Skip()
	})
	x.hosts = append(x.hosts, h)
	return err
}

// tlsa reads a TLSA lookup and counts the host when it found a secure,
// non-empty RRset.
func (x *csvReader) tlsa() error {
	var (
		secure  bool
		records int
	)
	err := x.fields(tlsaFields, func(f int) error {
		d := x.d
		switch f {
		case 0:
			return d.Bool(&secure)
		case 1:
			return d.CheckString()
		case 2:
			records = 0
			return d.Array(func() error {
				records++
				return x.fields(noFields, nil)
			})
		}
		return d.Skip()
	})
	if secure && records > 0 {
		x.tlsaHosts++
	}
	return err
}

func (x *csvReader) addr() error {
	x.ips++
	return x.fields(addrFields, func(f int) error {
		d := x.d
		switch f {
		case 0:
			return d.Text(checkIP)
		case 1:
			if d.Null() {
				return d.Skip()
			}
			return x.fields(probeFields, x.probeField)
		case 2:
			return d.CheckString()
		case 3, 4: // pkix_valid, dane_match
			var b bool
			return d.Bool(&b)
		case 5:
			return x.certFlags()
		}
		return d.Skip()
	})
}

// checkIP parses an address as storedAddr.IP would (the CSV does not show it).
func checkIP(b []byte) error {
	var ip netip.Addr
	return ip.UnmarshalText(b)
}

func (x *csvReader) probeField(f int) error {
	d := x.d
	switch f {
	case 0:
		return d.CheckString()
	case 1:
		var reachable bool
		err := d.Bool(&reachable)
		if reachable {
			x.reachable++
		}
		return err
	case 2:
		if d.Null() {
			return d.Skip()
		}
		x.tls++
		var version string
		err := x.fields(tlsFields, func(f int) error {
			switch f {
			case 0:
				return storedjson.DecodeString(d, &version, true)
			case 1:
				return d.CheckString()
			case 2:
				leaf := true
				return d.Array(func() error {
					var na time.Time
					err := x.fields(certFields, func(f int) error {
						if f == 2 {
							return d.Time(&na)
						}
						return d.CheckString()
					})
					if leaf {
						leaf = false
						if na = na.UTC(); !na.IsZero() && (x.notAfter.IsZero() || na.Before(x.notAfter)) {
							x.notAfter = na
						}
					}
					return err
				})
			}
			return d.Skip()
		})
		if version != "" && !slices.Contains(x.versions, version) {
			x.versions = append(x.versions, version)
		}
		return err
	}
	return d.Skip()
}
