package report

import "github.com/tlsready/tlsready/report/internal/storedjson"

// interner shares repeated strings between the results one goroutine decodes.
type interner = storedjson.Interner

// decodeStored decodes the JSON of a stored result.Result into r exactly as
// json.Unmarshal(data, r) would: the same values (unknown fields skipped,
// keys matched exactly and then case-insensitively, null leaving values
// alone or clearing pointers and slices, repeated keys decoding into what is
// there) and an error in the same cases (invalid JSON anywhere, a value of
// the wrong type for a field). FuzzDecodeStored checks it against
// encoding/json.
//
// It exists for speed: encoding/json validates the whole input, then walks
// it again through reflection, about 10 µs for a small result; this is one
// pass without reflection, and at a million domains decoding is most of an
// export's time.
//
// Strings that repeat across results (verdicts, flags, probe statuses, TLS
// versions, issuers) are taken from in when it is not nil, and added to it
// while it is small.
func decodeStored(data []byte, r *storedResult, in interner) error {
	d := storedjson.NewDecoder(data, in)
	err := storedjson.DecodeStruct(d, r, resultFields, func(f int, r *storedResult) error { return resultField(d, f, r) })
	if err != nil {
		return err
	}
	return d.End()
}

var (
	resultFields = storedjson.NewFieldSet("domain_unicode", "verdict", "flags", "scanned_at", "reason", "mx_secure", "mx", "mta_sts")
	stsFields    = storedjson.NewFieldSet("mode")
	hostFields   = storedjson.NewFieldSet("name", "preference", "secure", "flags", "tlsa", "addrs")
	tlsaFields   = storedjson.NewFieldSet("secure", "status", "records")
	addrFields   = storedjson.NewFieldSet("ip", "probe", "skipped", "pkix_valid", "dane_match", "flags")
	probeFields  = storedjson.NewFieldSet("status", "reachable", "tls")
	tlsFields    = storedjson.NewFieldSet("version", "cipher_suite", "certs")
	certFields   = storedjson.NewFieldSet("subject", "issuer", "not_after")
	noFields     = storedjson.NewFieldSet()
)

func resultField(d *storedjson.Decoder, f int, r *storedResult) error {
	switch f {
	case 0:
		return d.String(&r.Unicode)
	case 1:
		return storedjson.DecodeString(d, &r.Verdict, true)
	case 2:
		return d.Strings(&r.Flags)
	case 3:
		return d.Time(&r.ScannedAt)
	case 4:
		return d.String(&r.Reason)
	case 5:
		return d.Bool(&r.MXSecure)
	case 6:
		return storedjson.DecodeSlice(d, &r.MX, func(h *storedHost) error {
			return storedjson.DecodeStruct(d, h, hostFields, func(f int, h *storedHost) error { return hostField(d, f, h) })
		})
	case 7:
		return storedjson.DecodePtr(d, &r.MTASTS, func(s *storedSTS) error {
			return storedjson.DecodeStruct(d, s, stsFields, func(_ int, s *storedSTS) error { return d.String(&s.Mode) })
		})
	}
	return d.Skip()
}

func hostField(d *storedjson.Decoder, f int, h *storedHost) error {
	switch f {
	case 0:
		return d.String(&h.Name)
	case 1:
		return d.Uint16(&h.Preference)
	case 2:
		return d.Bool(&h.Secure)
	case 3:
		return d.Strings(&h.Flags)
	case 4:
		return storedjson.DecodePtr(d, &h.TLSA, func(t *storedTLSA) error {
			return storedjson.DecodeStruct(d, t, tlsaFields, func(f int, t *storedTLSA) error { return tlsaField(d, f, t) })
		})
	case 5:
		return storedjson.DecodeSlice(d, &h.Addrs, func(a *storedAddr) error {
			return storedjson.DecodeStruct(d, a, addrFields, func(f int, a *storedAddr) error { return addrField(d, f, a) })
		})
	}
	return d.Skip()
}

func tlsaField(d *storedjson.Decoder, f int, t *storedTLSA) error {
	switch f {
	case 0:
		return d.Bool(&t.Secure)
	case 1:
		return storedjson.DecodeString(d, &t.Status, true)
	case 2:
		return storedjson.DecodeSlice(d, &t.Records, func(e *struct{}) error {
			return storedjson.DecodeStruct(d, e, noFields, func(_ int, _ *struct{}) error { return d.Skip() })
		})
	}
	return d.Skip()
}

func addrField(d *storedjson.Decoder, f int, a *storedAddr) error {
	switch f {
	case 0:
		return d.Text(a.IP.UnmarshalText)
	case 1:
		return storedjson.DecodePtr(d, &a.Probe, func(p *storedProbe) error {
			return storedjson.DecodeStruct(d, p, probeFields, func(f int, p *storedProbe) error { return probeField(d, f, p) })
		})
	case 2:
		return storedjson.DecodeString(d, &a.Skipped, true)
	case 3:
		return d.Bool(&a.PKIXValid)
	case 4:
		return storedjson.DecodePtr(d, &a.DANEMatch, d.Bool)
	case 5:
		return d.Strings(&a.Flags)
	}
	return d.Skip()
}

func probeField(d *storedjson.Decoder, f int, p *storedProbe) error {
	switch f {
	case 0:
		return storedjson.DecodeString(d, &p.Status, true)
	case 1:
		return d.Bool(&p.Reachable)
	case 2:
		return storedjson.DecodePtr(d, &p.TLS, func(t *storedTLS) error {
			return storedjson.DecodeStruct(d, t, tlsFields, func(f int, t *storedTLS) error { return tlsField(d, f, t) })
		})
	}
	return d.Skip()
}

func tlsField(d *storedjson.Decoder, f int, t *storedTLS) error {
	switch f {
	case 0:
		return storedjson.DecodeString(d, &t.Version, true)
	case 1:
		return storedjson.DecodeString(d, &t.CipherSuite, true)
	case 2:
		return storedjson.DecodeSlice(d, &t.Certs, func(c *storedCert) error {
			return storedjson.DecodeStruct(d, c, certFields, func(f int, c *storedCert) error { return certField(d, f, c) })
		})
	}
	return d.Skip()
}

func certField(d *storedjson.Decoder, f int, c *storedCert) error {
	switch f {
	case 0:
		return d.String(&c.Subject)
	case 1:
		return storedjson.DecodeString(d, &c.Issuer, true)
	case 2:
		return d.Time(&c.NotAfter)
	}
	return d.Skip()
}
