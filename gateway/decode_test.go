package gateway

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// fullResult has every field of result.Result set, some more than once.
func fullResult() result.Result {
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	yes := true
	ip4 := netip.MustParseAddr("192.0.2.1")
	return result.Result{
		Domain: "xn--r8jz45g.example", Unicode: "例え.example", Verdict: result.MTASTS,
		Flags: []string{"dnssec-insecure", "no-tlsrpt"}, ScannedAt: at, RunID: 7, Reason: "a \"reason\" <b>\u2028",
		ImplicitMX: true, MXSecure: true, DNSStatus: "ok",
		MX: []result.Host{
			{Name: "mx2.example", Preference: 20, CNAME: "real.example", Secure: true, Flags: []string{"mx-cname"},
				TLSA: &result.TLSA{Name: "_25._tcp.mx2.example", Secure: true, Status: "ok",
					Records: []result.TLSARecord{{Usage: 3, Selector: 1, MatchingType: 1, Data: "ab"}}},
				Addrs: []result.Addr{{IP: ip4, NameMatch: true, PKIXValid: true, DANEMatch: &yes,
					Probe: &result.Probe{IP: ip4, Status: result.ProbeOK, Reachable: true, Banner: "220 \"mx\" {[", EHLO: []string{"STARTTLS"},
						TLS: &result.TLSInfo{Version: "TLS 1.3", Certs: []result.CertInfo{{Subject: "CN=mx2", NotAfter: at}}}}}}},
			{Name: "mx1.example", Preference: 10},
		},
		MTASTS:   &result.STSPolicy{RecordID: "1", Mode: "enforce", MX: []string{"*.example", "mx1.example"}, MaxAge: 86400, FetchedAt: at},
		TLSRPT:   &result.TLSRPT{RUA: []string{"mailto:tlsrpt@example"}},
		Duration: time.Minute,
	}
}

// decodeSeeds are JSON texts that exercise the decoder: stored results and
// the odd inputs encoding/json has rules for.
func decodeSeeds(t testing.TB) [][]byte {
	full, err := json.Marshal(fullResult())
	if err != nil {
		t.Fatal(err)
	}
	seeds := [][]byte{full}
	for _, s := range []string{
		`{}`, `null`, ` {"verdict":"dane"} `, `[]`, `"x"`, `1`, ``, `{`, `{"mx":[1]}`, `{"mx":{}}`,
		`{"VERDICT":"plaintext","Mx":[{"NAME":"a"}],"mta_ſts":{"MODE":"enforce","mX":["b"]}}`, // case-insensitive keys, ſ folds to S
		`{"mx":[{"name":"a"},{"name":"b"}],"mx":[{"name":"c"}],"mx":[{},{}]}`,                 // repeated keys merge
		`{"mx":[{"name":"a"},{"name":"b"},{"name":"c"}],"mx":[{"name":"d"}],"mx":[{},{},{},{},{}]}`,
		`{"mx":[{"name":"a"}],"mx":[],"mx":[{}]}`, `{"flags":["a","b"],"flags":[null,null,null]}`,
		`{"mta_sts":{"mode":"enforce","mx":["a"]},"mta_sts":{"mx":null}}`, `{"mta_sts":{"mode":"enforce"},"mta_sts":null}`,
		`{"mx":null,"flags":[],"verdict":null,"scanned_at":null,"mta_sts":null}`, `{"mx":[null,{"name":null}]}`,
		`{"verdict":"\ud83d\ude00 \ud83d x \u00e9\t\/\"\\"}`, "{\"verdict\":\"\xff\xfe ok\"}", `{"verdict":"\'"}`,
		`{"scanned_at":"2025-01-02T03:04:05.123+09:00"}`, `{"scanned_at":"2025-13-02T03:04:05Z"}`, `{"scanned_at":{}}`, `{"scanned_at":5}`,
		`{"mx":[{"name":"a","addrs":[{"ip":"1.2.3"}]}]}`, `{"mx":[{"name":5}]}`, `{"mx":[{"name":"a"}],"mta_sts":{"mx":"a"}}`,
		`{"unknown":{"a":[1,2.5e-3,true,false,null,"s",{}]},"verdict":"dane"}`, `{"x":01}`, `{"x":1.}`, `{"x":-}`, `{"x":tru}`,
		`{"flags":["a",null,"b"]}`, `{"flags":"a"}`, `{"mta_sts":5}`, `{"mta_sts":[]}`, `{"verdict":true}`,
		`{"verdict":"dane"} x`, `{"verdict":"dane",}`, `{"a" "b"}`, "{\"verdict\":\"a\x01\"}",
		`{"\u0076erdict":"dane","m\u0078":[{"n\u0061me":"q"}]}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001), `{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

// checkDecode compares decodeStored with json.Unmarshal on one input.
func checkDecode(t *testing.T, data []byte) {
	var want, got, got2 storedResult
	werr := json.Unmarshal(data, &want)
	err := decodeStored(data, &got, nil)
	err2 := decodeStored(data, &got2, interner{})
	if (err == nil) != (werr == nil) || (err2 == nil) != (werr == nil) {
		t.Fatalf("%q: error %v (with interner %v), encoding/json: %v", data, err, err2, werr)
	}
	if werr == nil && (!reflect.DeepEqual(got, want) || !reflect.DeepEqual(got2, want)) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
	}
	// What the load decodes into (slices with room) gives the same values.
	var dec itemDecoder
	var ib itemBatch
	dec.decode(&ib, "x.example", data)
	dec.decode(&ib, "y.example", data) // reused buffers
	if len(ib.items) != 2 || (werr != nil || !want.Verdict.Valid()) != (ib.items[0].verdict == tombstone) ||
		ib.items[0].verdict != ib.items[1].verdict {
		t.Fatalf("%q: items %+v (encoding/json: %v)", data, ib.items, werr)
	}
	if werr == nil && want.Verdict.Valid() {
		rec := recordOf(result.Result{Verdict: want.Verdict, Flags: want.Flags, ScannedAt: want.ScannedAt, MX: hostsOf(want.MX)})
		if want.MTASTS != nil {
			rec.STSMatch = stsMatchOf(want.MTASTS.Mode, want.MTASTS.MX)
		}
		for i, it := range ib.items {
			if got := itemRecord(&it, ib.arena); !sameRecord(got, rec) {
				t.Fatalf("%q: item %d is %+v, recordOf %+v", data, i, got, rec)
			}
		}
	}
}

func hostsOf(hs []storedHost) []result.Host {
	var out []result.Host
	for _, h := range hs {
		out = append(out, result.Host{Name: h.Name})
	}
	return out
}

// itemRecord is the record an item stands for (domain left out).
func itemRecord(it *item, arena []byte) record {
	rec := record{
		Verdict:  result.Verdicts[it.verdict],
		Flags:    parseFlagKey(arena[it.flagsOff:it.flagsEnd]),
		MX:       string(arena[it.mxOff:it.mxEnd]),
		STSMatch: string(arena[it.stsOff:it.stsEnd]),
	}
	if it.scanned != 0 {
		rec.ScannedAt = time.Unix(0, it.scanned).UTC()
	}
	return rec
}

// sameRecord compares records as answers see them (nil and empty flags alike).
func sameRecord(a, b record) bool {
	return a.Domain == b.Domain && a.Verdict == b.Verdict && strings.Join(a.Flags, "\x00") == strings.Join(b.Flags, "\x00") &&
		len(a.Flags) == len(b.Flags) && a.ScannedAt.Equal(b.ScannedAt) && a.MX == b.MX && a.STSMatch == b.STSMatch
}

func TestDecodeStored(t *testing.T) {
	t.Parallel()
	for _, s := range decodeSeeds(t) {
		checkDecode(t, s)
	}
	js, err := json.Marshal(fullResult())
	if err != nil {
		t.Fatal(err)
	}
	var r storedResult
	if err := decodeStored(js, &r, nil); err != nil {
		t.Fatal(err)
	}
	if len(r.MX) != 2 || r.MX[0].Name != "mx2.example" || r.MTASTS.Mode != "enforce" || len(r.MTASTS.MX) != 2 ||
		r.Verdict != result.MTASTS || len(r.Flags) != 2 || !r.ScannedAt.Equal(fullResult().ScannedAt) {
		t.Errorf("decoded %+v", r)
	}
}

// FuzzDecodeStored: decodeStored agrees with encoding/json, value for value
// and error for error, and the load's items with recordOf.
func FuzzDecodeStored(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkDecode)
}

// TestStoredResultMirrorsResult: every field of storedResult (and of the
// types inside it) has a field of the same JSON name and a compatible type
// in result.Result, so a renamed field there fails here, not silently in
// the cache.
func TestStoredResultMirrorsResult(t *testing.T) {
	t.Parallel()
	var check func(path string, st, rt reflect.Type)
	check = func(path string, st, rt reflect.Type) {
		switch {
		case st.Kind() == reflect.Pointer || st.Kind() == reflect.Slice:
			if rt.Kind() != st.Kind() {
				t.Errorf("%s: %v, result has %v", path, st, rt)
				return
			}
			check(path+"[]", st.Elem(), rt.Elem())
		case st.Kind() == reflect.Struct && st.PkgPath() == "github.com/tlsready/tlsready/gateway":
			if rt.Kind() != reflect.Struct {
				t.Errorf("%s: struct, result has %v", path, rt)
				return
			}
			for i := range st.NumField() {
				sf := st.Field(i)
				name := strings.Split(sf.Tag.Get("json"), ",")[0]
				rf, ok := jsonField(rt, name)
				if !ok {
					t.Errorf("%s.%s: result.%s has no JSON field %q", path, sf.Name, rt.Name(), name)
					continue
				}
				check(path+"."+name, sf.Type, rf.Type)
			}
		case st != rt:
			t.Errorf("%s: %v, result has %v", path, st, rt)
		}
	}
	check("result", reflect.TypeFor[storedResult](), reflect.TypeFor[result.Result]())
}

func jsonField(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); strings.Split(f.Tag.Get("json"), ",")[0] == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
