package gateway

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

func TestTableAgainstMap(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string]record{}
	b := newBuilder(0)
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20000 {
		d := fmt.Sprintf("d%d.example", rng.IntN(15000)) // duplicates: the later one wins
		rec := record{
			Domain:    d,
			Verdict:   result.Verdicts[rng.IntN(len(result.Verdicts))],
			Flags:     [][]string{nil, {"cert-expired"}, {"no-tlsrpt", "tls-1.0"}}[rng.IntN(3)],
			ScannedAt: base.Add(time.Duration(i) * time.Second),
			MX:        fmt.Sprintf("mx%d.provider.example,mx%d.provider.example", i%7, i%7+1),
		}
		if rec.Verdict == result.MTASTS {
			rec.STSMatch = ".provider.example"
		}
		if !b.addRecord(rec) {
			t.Fatalf("record %+v rejected", rec)
		}
		if rec.Flags == nil {
			rec.Flags = []string{}
		}
		want[d] = rec
	}
	tab := b.finish()
	if tab.len() != len(want) {
		t.Errorf("len %d, want %d", tab.len(), len(want))
	}
	for d, w := range want {
		got, ok := tab.get(d)
		if !ok {
			t.Fatalf("%s missing", d)
		}
		if fmt.Sprint(got) != fmt.Sprint(w) || !got.ScannedAt.Equal(w.ScannedAt) {
			t.Fatalf("%s: got %+v, want %+v", d, got, w)
		}
	}
	for _, d := range []string{"d15000.example", "example", "", "d1.example.", "D1.example"} {
		if _, ok := tab.get(d); ok {
			t.Errorf("%q found", d)
		}
	}
	// MX lists shared by many domains are stored once.
	if len(tab.strs) > 1000 {
		t.Errorf("string arena of %d bytes: MX lists not interned", len(tab.strs))
	}
}

func TestTableRejects(t *testing.T) {
	t.Parallel()
	b := newBuilder(0)
	for _, r := range []result.Result{
		{Domain: "Upper.example", Verdict: result.DANE},        // not normalised
		{Domain: "ok.example", Verdict: result.Unknown},        // not a verdict
		{Domain: "ok.example", Verdict: "secure"},              // not a verdict
		{Domain: "bad_name.example", Verdict: result.Verified}, // not a host name
	} {
		if b.add(r) {
			t.Errorf("accepted %+v", r)
		}
	}
	tab := b.finish()
	if tab.len() != 0 || tab.skipped != 4 {
		t.Errorf("len %d skipped %d", tab.len(), tab.skipped)
	}
	var empty *table
	if _, ok := empty.get("x.example"); ok || empty.len() != 0 {
		t.Error("nil table answers")
	}
}

func TestRecordOfMX(t *testing.T) {
	t.Parallel()
	r := result.Result{Domain: "x.example", Verdict: result.Verified, MX: []result.Host{{Name: "a.example"}, {Name: "b,c.example"}, {Name: "d.example"}}}
	if got := recordOf(r).MX; got != "a.example,d.example" {
		t.Errorf("MX %q", got)
	}
	if got := splitList("a.example,d.example"); strings.Join(got, " ") != "a.example d.example" {
		t.Errorf("split %q", got)
	}
}

func TestAnswerJSONMatchesReflection(t *testing.T) {
	t.Parallel()
	type plain Answer // no MarshalJSON
	ts := time.Date(2025, 6, 1, 12, 30, 15, 123456789, time.FixedZone("x", 3600))
	for _, a := range []Answer{
		{},
		{Domain: "a.example", Verdict: result.Unknown, Flags: []string{}, MX: []string{}},
		{Domain: "xn--bcher-kva.example", DomainUnicode: "bücher.example", Verdict: result.MTASTS, Flags: []string{"a", "b"},
			ScannedAt: ts, ValidUntil: ts.Add(96 * time.Hour).UTC(), Stale: true, Policy: "secure match=.x.example:y servername=hostname",
			MX: []string{"mx1.example", "mx2.example"}, Live: true, Error: "e"},
		{Domain: "q\"\\<>&\x01\u2028\xff", Error: "invalid domain name"},
		{Domain: "p.example", Verdict: result.Verified, Policy: "verify", PendingPolicy: "dane-only", Flags: []string{}, MX: []string{}},
		{Domain: "p.example", Verdict: result.Unknown, Policy: "none", Flags: []string{}, MX: []string{},
			Pin: &PinInfo{Policy: "none", Reason: "<broken> & \"x\"\t", Until: ts, SetAt: ts.UTC(), SetBy: "alice", Host: "adm1"}},
	} {
		want, err := json.Marshal(plain(a))
		if err != nil {
			t.Fatal(err)
		}
		got, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}

// TestPatch: a base patched with deltas — replaced, new and removed
// (tombstone) domains, a base that grows past its index — answers what a
// map of the latest records says, as does its rebuild (merge), and neither
// base nor delta changes for their readers.
func TestPatch(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[string]record{}
	randomRecord := func(d string) record {
		at = at.Add(time.Second)
		rec := record{Domain: d, Verdict: result.Verdicts[rng.IntN(len(result.Verdicts))], ScannedAt: at,
			Flags: [][]string{{}, {"cert-expired"}, {"no-tlsrpt", fmt.Sprintf("f%d", rng.IntN(50))}}[rng.IntN(3)],
			MX:    []string{"", "mx.provider.example", fmt.Sprintf("mx.%s", d)}[rng.IntN(3)]}
		if rec.Verdict == result.MTASTS {
			rec.STSMatch = fmt.Sprintf(".p%d.example", rng.IntN(5))
		}
		return rec
	}
	b := newBuilder(0)
	for i := range 1000 {
		rec := randomRecord(fmt.Sprintf("d%d.example", i))
		b.addRecord(rec)
		want[rec.Domain] = rec
	}
	base := b.finish()
	check := func(tab *table, want map[string]record, what string) {
		t.Helper()
		if tab.len() != len(want) {
			t.Fatalf("%s: len %d, want %d", what, tab.len(), len(want))
		}
		for i := range 3000 {
			d := fmt.Sprintf("d%d.example", i)
			got, ok := tab.get(d)
			w, wok := want[d]
			if ok != wok || ok && (fmt.Sprint(got) != fmt.Sprint(w) || !got.ScannedAt.Equal(w.ScannedAt)) {
				t.Fatalf("%s: %s: got %+v %v, want %+v %v", what, d, got, ok, w, wok)
			}
		}
	}
	check(base, want, "base")
	for round := range 12 {
		before := maps.Clone(want)
		db := newBuilder(0)
		for range 50 + rng.IntN(300) {
			d := fmt.Sprintf("d%d.example", rng.IntN(1000+200*round)) // replaced and new domains
			if rng.IntN(8) == 0 {
				it := item{domain: d, verdict: tombstone}
				if !db.addItem(&it, nil) {
					t.Fatal("tombstone rejected")
				}
				db.entries[len(db.entries)-1].inBase = base.find(d) != nil && base.find(d).verdict != tombstone
				delete(want, d)
				continue
			}
			rec := randomRecord(d)
			if !db.addRecord(rec) {
				t.Fatalf("%+v rejected", rec)
			}
			db.entries[len(db.entries)-1].inBase = base.find(d) != nil && base.find(d).verdict != tombstone
			want[d] = rec
		}
		delta := db.finishSeed(base.seed)
		next := patch(base, delta)
		check(base, before, fmt.Sprintf("round %d: base after the patch", round))
		check(next, want, fmt.Sprintf("round %d: patched", round))
		if next.seed != base.seed {
			t.Fatal("patch changed the seed")
		}
		check(merge(next, nil), want, fmt.Sprintf("round %d: rebuilt", round))
		check(merge(base, delta), want, fmt.Sprintf("round %d: merged", round))
		base = next
	}
	if base.garbage == 0 || base.count == base.live {
		t.Errorf("after the patches: garbage %d, %d entries for %d domains", base.garbage, base.count, base.live)
	}
}
