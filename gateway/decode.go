package gateway

import (
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store/storedjson"
)

// storedResult is the part of a stored result.Result (its JSON) that the
// gateway answers from, with the same JSON names; the rest (probes,
// certificates, TLSA records) is skipped. TestStoredResultMirrorsResult keeps
// the names and types in step with result.Result. The domain comes from the
// store's key column.
type storedResult struct {
	Verdict   result.Verdict `json:"verdict"`
	Flags     []string       `json:"flags"`
	ScannedAt time.Time      `json:"scanned_at"`
	MX        []storedHost   `json:"mx"`
	MTASTS    *storedSTS     `json:"mta_sts"`
}

type storedHost struct {
	Name string `json:"name"`
}

type storedSTS struct {
	Mode string   `json:"mode"`
	MX   []string `json:"mx"`
}

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
// It exists for speed: one pass without reflection that skips most of a
// result, where encoding/json validates the whole input and then walks it
// again through reflection; decoding is most of a cache load's time.
//
// Strings that repeat across results (verdicts, flags, MX host names) are
// taken from in when it is not nil, and added to it while it is small.
func decodeStored(data []byte, r *storedResult, in interner) error {
	d := storedjson.NewDecoder(data, in)
	err := storedjson.DecodeStruct(d, r, resultFields, func(f int, r *storedResult) error { return resultField(d, f, r) })
	if err != nil {
		return err
	}
	return d.End()
}

var (
	resultFields = storedjson.NewFieldSet("verdict", "flags", "scanned_at", "mx", "mta_sts")
	hostFields   = storedjson.NewFieldSet("name")
	stsFields    = storedjson.NewFieldSet("mode", "mx")
)

func resultField(d *storedjson.Decoder, f int, r *storedResult) error {
	switch f {
	case 0:
		return storedjson.DecodeString(d, &r.Verdict, true)
	case 1:
		return d.Strings(&r.Flags)
	case 2:
		return d.Time(&r.ScannedAt)
	case 3:
		return storedjson.DecodeSlice(d, &r.MX, func(h *storedHost) error {
			return storedjson.DecodeStruct(d, h, hostFields, func(_ int, h *storedHost) error {
				return storedjson.DecodeString(d, &h.Name, true)
			})
		})
	case 4:
		return storedjson.DecodePtr(d, &r.MTASTS, func(s *storedSTS) error {
			return storedjson.DecodeStruct(d, s, stsFields, func(f int, s *storedSTS) error {
				if f == 0 {
					return storedjson.DecodeString(d, &s.Mode, true)
				}
				return d.Strings(&s.MX)
			})
		})
	}
	return d.Skip()
}
