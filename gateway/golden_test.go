package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestDemoAnswersGolden: for the stored results of a demo scan
// (testdata/demo-results.jsonl, in domain order), the answers from the
// store before the first load and then from the cache are byte for byte
// those in testdata/demo-answers.jsonl, which the gateway wrote when it
// decoded the result JSON (commit af663d0, before the store's read model):
// each domain's, then two unknown domains', from the store and then the cache.
func TestDemoAnswersGolden(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("testdata/demo-results.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	var (
		rs      []result.Result
		domains []string
	)
	for line := range bytes.Lines(raw) {
		var r result.Result
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
		domains = append(domains, r.Domain)
	}
	domains = append(domains, "unknown.example", "xn--r8jz45g.example")
	st := openTestStore(t)
	if err := st.SaveResults(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/demo-answers.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	golden := bufio.NewScanner(f)
	now := func() time.Time { return time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC) }
	for _, load := range []bool{false, true} {
		s, err := New(Config{Store: st, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		if load {
			if _, err := s.Refresh(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range domains {
			a, err := s.Lookup(t.Context(), d)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			got, _ := json.Marshal(a)
			if !golden.Scan() {
				t.Fatalf("%s: no golden answer", d)
			}
			if want := golden.Bytes(); !bytes.Equal(got, want) {
				t.Errorf("%s (loaded: %v):\n got %s\nwant %s", d, load, got, want)
			}
		}
	}
	if golden.Scan() {
		t.Errorf("golden answers left over: %s", golden.Text())
	}
}
