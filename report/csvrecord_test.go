package report

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
	"github.com/tlsready/tlsready/store"
)

// checkCSVReader compares the CSV record csvReader reads from data with the
// one newRecord makes of decodeStored's result. It gives up exactly where
// decodeStored fails, and may give up elsewhere unless must is set.
func checkCSVReader(t *testing.T, x *csvReader, data []byte, must bool) {
	t.Helper()
	flags := []string{result.FlagNoTLSRPT}
	var r storedResult
	err := decodeStored(data, &r, nil)
	got := newRecord("xn--r8jz45g.example", 3, result.DANE, flags, nil, false)
	ok := x.record(data, &got)
	switch {
	case err != nil && ok:
		t.Fatalf("%q: read, but decodeStored fails: %v", data, err)
	case err != nil:
		return
	case !ok && must:
		t.Fatalf("%q: gave up on a result json.Marshal wrote", data)
	case !ok:
		return
	}
	want := newRecord("xn--r8jz45g.example", 3, result.DANE, flags, &r, false)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
	}
	var gb, wb bytes.Buffer
	for _, c := range []struct {
		rec *DomainRecord
		out *bytes.Buffer
	}{{&got, &gb}, {&want, &wb}} {
		encode, flush := csvFormat(c.out)
		if err := encode(c.rec); err != nil {
			t.Fatal(err)
		}
		if err := flush(); err != nil {
			t.Fatal(err)
		}
	}
	if gb.String() != wb.String() {
		t.Fatalf("%q: CSV row\n got %q\nwant %q", data, gb.String(), wb.String())
	}
}

// TestCSVReader: the CSV export's one-pass reading of stored results gives
// the records the full decoding gives, on the decoder's seeds (odd JSON
// included) and on benchmark-shaped results, which it must read itself.
func TestCSVReader(t *testing.T) {
	t.Parallel()
	x := &csvReader{}
	for _, s := range decodeSeeds(t) {
		checkCSVReader(t, x, s, false)
	}
	at := time.Date(2025, 2, 1, 0, 1, 0, 0, time.UTC)
	for i := range 2000 {
		for run := 1; run <= 2; run++ {
			js, err := json.Marshal(benchResult(i, run, at))
			if err != nil {
				t.Fatal(err)
			}
			checkCSVReader(t, x, js, true)
		}
	}
	js, err := json.Marshal(fullResult())
	if err != nil {
		t.Fatal(err)
	}
	checkCSVReader(t, x, js, true)
	// Given twice, case-insensitive, null where a value was: left to the
	// full decoder, with the same record.
	for _, s := range []string{
		`{"mx":[{"name":"a","preference":2},{"name":"b","preference":1}]}`,
		`{"mx":[{"name":"a"}],"mx":[{"preference":3},{"name":"c"}]}`,
		`{"MX":[{"Name":"a"}]}`, `{"reason":"a","reason":null}`, `{"mx":[null,{"addrs":[null,{"probe":null}]}]}`,
		`{"mx":[{"tlsa":{"secure":true,"records":[null]},"addrs":[{"probe":{"reachable":true,"tls":{"certs":[null,{"not_after":"2030-01-01T00:00:00Z"}]}}}]}]}`,
		`{"mx":[{"addrs":[{"probe":{"tls":{"version":"TLS 1.2","certs":[{"not_after":"2030-01-01T00:00:00+02:00"}]}}},` +
			`{"flags":["cert-expired","x","cert-expired"],"probe":{"tls":{"version":"TLS 1.2","certs":[{"not_after":"2029-01-01T00:00:00Z"}]}}}]}]}`,
	} {
		checkCSVReader(t, x, []byte(s), false)
	}
}

// FuzzCSVReader: csvReader agrees with decodeStored and newRecord.
func FuzzCSVReader(f *testing.F) {
	for _, s := range decodeSeeds(f) {
		f.Add(s)
	}
	x := &csvReader{}
	f.Fuzz(func(t *testing.T, data []byte) { checkCSVReader(t, x, data, false) })
}

// TestCSVExportMatchesReference: the CSV export of a few thousand
// benchmark-shaped results (several batches on every worker) is byte for
// byte what a plain implementation writes: the run's history rows, each
// stored result decoded by encoding/json, newRecord, encoding/csv.
func TestCSVExportMatchesReference(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	const n = 3000
	st := openBenchDB(t, n)
	var got bytes.Buffer
	if err := WriteCSV(ctx, st, 0, &got); err != nil {
		t.Fatal(err)
	}

	var want bytes.Buffer
	bw := bufio.NewWriter(&want)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVColumns); err != nil {
		t.Fatal(err)
	}
	cw.Flush()
	run, err := st.LatestFinishedRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	encode, flush := csvFormat(&want)
	err = st.RunResultsRaw(ctx, run.ID, func(d store.RunDomain, raw []byte) error {
		if raw == nil {
			rec := newRecord(d.Domain, d.Citizens, d.Verdict, d.Flags, nil, false)
			return encode(&rec)
		}
		var r storedResult
		if err := json.Unmarshal(raw, &r); err != nil {
			return fmt.Errorf("%s: %w", d.Domain, err)
		}
		rec := newRecord(d.Domain, d.Citizens, bucketList[bucket(d.Verdict)], d.Flags, &r, false)
		return encode(&rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := flush(); err != nil {
		t.Fatal(err)
	}
	if got.Len() < n*100 || !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("CSV export (%d bytes) differs from the reference (%d bytes)", got.Len(), want.Len())
	}
}
