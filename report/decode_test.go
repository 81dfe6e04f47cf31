package report

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// fullResult has every field of result.Result set, some more than once.
func fullResult() result.Result {
	at := time.Date(2025, 3, 4, 5, 6, 7, 8, time.UTC)
	yes, no := true, false
	ip4, ip6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	return result.Result{
		Domain: "xn--r8jz45g.example", Unicode: "例え.example", Verdict: result.DANE,
		Flags: []string{"dnssec-insecure", "no-tlsrpt"}, ScannedAt: at, RunID: 7, Reason: "a \"reason\" <b>\u2028",
		ImplicitMX: true, NullMX: true, MXSecure: true, DNSStatus: "ok",
		MX: []result.Host{
			{Name: "mx2.example", Preference: 20, CNAME: "real.example", Secure: true, DNSStatus: "ok", Flags: []string{"mx-cname"},
				TLSA: &result.TLSA{Name: "_25._tcp.mx2.example", Secure: true, Status: "ok",
					Records: []result.TLSARecord{{Usage: 3, Selector: 1, MatchingType: 1, Data: "ab"}, {Usage: 2}}},
				Addrs: []result.Addr{
					{IP: ip6, Skipped: "private-address"},
					{IP: ip4, NameMatch: true, PKIXValid: true, DANEMatch: &yes, Flags: []string{"cert-expired"},
						Probe: &result.Probe{IP: ip4, SNI: "mx2.example", Status: result.ProbeOK, Reachable: true,
							Banner: "220 hi", BannerCode: 220, EHLO: []string{"STARTTLS", "8BITMIME"}, STARTTLSOffered: true,
							STARTTLSReply: "220 go", Retried: true, StartedAt: at, Duration: time.Second,
							TLS: &result.TLSInfo{Version: "TLS 1.2", VersionID: 0x303, CipherSuite: "TLS_ECDHE", Legacy: true,
								ChainTrusted: true, Expired: true, NotYetValid: true, SelfSigned: true, ChainError: "x",
								Certs: []result.CertInfo{
									{Subject: "CN=leaf", Issuer: "CN=ca", DNSNames: []string{"a"}, NotBefore: at, NotAfter: at.Add(time.Hour), SHA256: "00", KeyType: "rsa"},
									{Subject: "CN=ca", Issuer: "CN=root", NotAfter: at.Add(2 * time.Hour)},
								}}}},
				}},
			{Name: "mx1.example", Preference: 10, Addrs: []result.Addr{{IP: ip4, DANEMatch: &no,
				Probe: &result.Probe{Status: result.ProbeNoSTARTTLS, Error: "e", Alert: "a"}}}},
		},
		MTASTS:   &result.STSPolicy{RecordID: "1", Mode: "enforce", MX: []string{"*.example"}, MaxAge: 86400, FetchedAt: at, Error: "-"},
		TLSRPT:   &result.TLSRPT{RUA: []string{"mailto:x@example"}},
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
		`{}`, `null`, ` {"verdict":"dane"} `, `[]`, `"x"`, `1`, ``, `{`, `{"mx":[1]}`,
		`{"VERDICT":"plaintext","Mx":[{"NAME":"a","ſecure":true}]}`,                         // case-insensitive keys, ſ folds to S
		`{"mx":[{"name":"a","secure":true},{"name":"b"}],"mx":[{"name":"c"}],"mx":[{},{}]}`, // repeated keys merge
		`{"mx":[{"addrs":[{"dane_match":true}]}],"mx":[{"addrs":[{"dane_match":null}]}]}`,
		`{"mx":null,"flags":[],"reason":null,"scanned_at":null,"mx_secure":null}`,
		`{"mx":[{"preference":65535}]}`, `{"mx":[{"preference":65536}]}`, `{"mx":[{"preference":1.0}]}`, `{"mx":[{"preference":-0}]}`,
		`{"reason":"\ud83d\ude00 \ud83d x \u00e9\t\/\"\\"}`, "{\"reason\":\"\xff\xfe ok\"}", `{"reason":"\'"}`,
		`{"scanned_at":"2025-01-02T03:04:05.123+09:00"}`, `{"scanned_at":"2025-13-02T03:04:05Z"}`, `{"scanned_at":{}}`,
		`{"mx":[{"addrs":[{"ip":"::ffff:1.2.3.4"},{"ip":null},{"ip":""}]}]}`, `{"mx":[{"addrs":[{"ip":"1.2.3"}]}]}`,
		`{"mx":[{"tlsa":{"records":[{},null,{"usage":3}]}}]}`, `{"mx":[{"tlsa":{"records":[[]]}}]}`,
		`{"unknown":{"a":[1,2.5e-3,true,false,null,"s",{}]},"verdict":"dane"}`, `{"x":01}`, `{"x":1.}`, `{"x":-}`, `{"x":tru}`,
		`{"flags":["a",null,"b"]}`, `{"flags":"a"}`, `{"mta_sts":{"mode":"testing"},"mta_sts":{"error":"x"}}`, `{"mta_sts":5}`,
		`{"verdict":"dane"} x`, `{"verdict":"dane",}`, `{"a" "b"}`, "{\"reason\":\"a\x01\"}",
		`{"domain_unicode":"\u00e9","\u0076erdict":"dane"}`,
		// Wrong types in fields the CSV export does not show (csvReader).
		`{"mx":[{"addrs":[{"dane_match":1}]}]}`, `{"mx":[{"tlsa":{"status":5}}]}`, `{"mx":[{"tlsa":{"status":null}}]}`,
		`{"mx":[{"addrs":[{"probe":{"tls":{"cipher_suite":[]}}}]}]}`, `{"mx":[{"addrs":[{"probe":{"tls":{"certs":[{"subject":1}]}}}]}]}`,
		`{"mx":[{"addrs":[{"probe":{"tls":{"certs":[{"Issuer":{},"subject":"\u00e9"}]}}}]}]}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001), `{"x":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`,
	} {
		seeds = append(seeds, []byte(s))
	}
	// The report fixture's stored results.
	st := openFixture(t)
	err = st.ResultsRaw(t.Context(), 0, func(_ string, raw []byte) error {
		seeds = append(seeds, slices.Clone(raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
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
}

func TestDecodeStored(t *testing.T) {
	t.Parallel()
	for _, s := range decodeSeeds(t) {
		checkDecode(t, s)
	}
	// The full result keeps what the exports read.
	js, err := json.Marshal(fullResult())
	if err != nil {
		t.Fatal(err)
	}
	var r storedResult
	if err := decodeStored(js, &r, nil); err != nil {
		t.Fatal(err)
	}
	if len(r.MX) != 2 || len(r.MX[0].Addrs) != 2 || r.MX[0].Addrs[1].Probe.TLS.Certs[0].Issuer != "CN=ca" ||
		len(r.MX[0].TLSA.Records) != 2 || *r.MX[1].Addrs[0].DANEMatch || r.MTASTS.Mode != "enforce" || r.Unicode != "例え.example" {
		t.Errorf("decoded %+v", r)
	}
}

// FuzzDecodeStored: decodeStored agrees with encoding/json, value for value
// and error for error.
func FuzzDecodeStored(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(checkDecode)
}

// TestStoredResultMirrorsResult: every field of storedResult (and of the
// types inside it) has a field of the same JSON name and a compatible type
// in result.Result, so a renamed field there fails here, not silently in
// the exports.
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
		case st.Kind() == reflect.Struct && st.PkgPath() == "github.com/tlsready/tlsready/report" || st == reflect.TypeFor[struct{}]():
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
