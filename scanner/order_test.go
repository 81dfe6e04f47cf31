package scanner

import (
	"fmt"
	"slices"
	"testing"
)

// TestSpreadOrder: a permutation, the same for the same seed, another for
// another seed, and names that sort together end up spread over the run.
func TestSpreadOrder(t *testing.T) {
	t.Parallel()
	var in []string
	for i := range 10000 {
		in = append(in, fmt.Sprintf("d%06d.test", i+1))
	}
	a, b, c := slices.Clone(in), slices.Clone(in), slices.Clone(in)
	SpreadOrder(a, 1)
	SpreadOrder(b, 1)
	SpreadOrder(c, 2)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different order")
	}
	if slices.Equal(a, c) {
		t.Fatal("another seed, same order")
	}
	if got := slices.Sorted(slices.Values(a)); !slices.Equal(got, in) {
		t.Fatal("not a permutation")
	}
	pos := map[string]int{}
	for i, d := range a {
		pos[d] = i
	}
	// Forty neighbours by name (one hoster's customers, say): the first
	// of them comes early, and they are spread over the run.
	for start := 0; start+40 <= len(in); start += 997 {
		var ps []int
		for _, d := range in[start : start+40] {
			ps = append(ps, pos[d])
		}
		slices.Sort(ps)
		if ps[0] > len(in)/10 {
			t.Errorf("names %d..%d: the first comes at %d of %d", start, start+39, ps[0], len(in))
		}
		if ps[len(ps)-1]-ps[0] < len(in)/2 {
			t.Errorf("names %d..%d: all within %d..%d", start, start+39, ps[0], ps[len(ps)-1])
		}
	}
}
