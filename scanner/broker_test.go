package scanner

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestOutcomeRoundTrip: a probe shared through an IPBroker keeps what the
// Probe's JSON leaves out (the DER chain a DANE check needs), the per-name
// mark and the back-off of a temporary refusal.
func TestOutcomeRoundTrip(t *testing.T) {
	due := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	in := probeRef{
		probe: &result.Probe{
			IP: netip.MustParseAddr("192.0.2.1"), SNI: "mx.example.test", Status: result.ProbeOK, Attempts: 2,
			TLS: &result.TLSInfo{Raw: [][]byte{{1, 2, 3}, {4}}},
		},
		perName: true,
		due:     due,
	}
	b, err := encodeOutcome(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := decodeOutcome(b)
	if err != nil {
		t.Fatal(err)
	}
	if !out.perName || !out.due.Equal(due) || !reflect.DeepEqual(out.probe.TLS.Raw, in.probe.TLS.Raw) ||
		out.probe.SNI != in.probe.SNI || out.probe.IP != in.probe.IP || out.probe.Attempts != 2 {
		t.Errorf("round trip: %+v, want %+v", out, in)
	}
	if _, err := decodeOutcome([]byte(`{}`)); err == nil {
		t.Error("an outcome without a probe decoded")
	}
}

func TestParseRequestKey(t *testing.T) {
	for key, want := range map[string]requestKey{
		"p|0|1|mx.example.test": {kind: reqProbe, keepRaw: true, name: "mx.example.test"},
		"p|2|0|a|b":             {kind: reqProbe, seen: 2, name: "a|b"},
		"d|example.test":        {kind: reqDANE, name: "example.test"},
		"r|mx.example.test":     {kind: reqRetry, name: "mx.example.test"},
	} {
		got, err := parseRequestKey(key)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", key, got, err, want)
		}
	}
	for _, bad := range []string{"", "p", "p|x|0|n", "p|-1|0|n", "p|0|2|n", "p|0|0|", "d|", "x|n", "p|1000|0|n"} {
		if _, err := parseRequestKey(bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%q: %v, want ErrBadRequest", bad, err)
		}
	}
}

// FuzzDecodeOutcome: outcomes and request keys come from a shared
// database; neither may panic, and a decoded outcome encodes again.
func FuzzDecodeOutcome(f *testing.F) {
	f.Add([]byte(`{"probe":{"ip":"192.0.2.1","sni":"mx.example.test","status":"ok"},"raw":["AQID"],"per_name":true,"due":"2026-12-03T10:00:00Z"}`), "p|0|1|mx.example.test")
	f.Add([]byte(`{"probe":{"tls":{}},"raw":null}`), "d|example.test")
	f.Add([]byte(`{"probe":null}`), "r|")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		_, _ = parseRequestKey(key)
		ref, err := decodeOutcome(b)
		if err != nil {
			return
		}
		if _, err := encodeOutcome(ref); err != nil {
			t.Fatalf("decoded outcome does not encode: %v", err)
		}
	})
}
