package register

import (
	"bytes"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/tlsready/tlsready/scanner/dnsname"
)

func FuzzReader(f *testing.F) {
	f.Add([]byte("a@example.org\n\nbad\n# c\r\nb@BÜCHER.example."), uint16(0), false)
	f.Add([]byte("\xef\xbb\xbfid,email\n1,a@example.org\n2,\"b@example.org\n3,c\"@x.org\n,d@example.org\n4\n"), uint16(0), true)
	f.Add([]byte("Email;ID\r\nx@example.org;7\r\n"), uint16(20), true)
	f.Add([]byte(strings.Repeat("x", 300)+"\na@example.org"), uint16(100), false)
	f.Add([]byte("id,email\n 7 ,\u00a0a@example.org\u00a0, x\n,b@example.org\n8\n9,,\n\"1\",c@example.org\n"), uint16(0), true)
	f.Fuzz(func(t *testing.T, data []byte, maxLine uint16, keep bool) {
		opts := Options{
			KeepAddresses:     keep,
			MaxLineBytes:      int(maxLine),
			MaxBadLineNumbers: 5,
		}
		rd := NewReader(bytes.NewReader(data), opts)
		// The same input with every CSV line through encoding/csv.
		slow := NewReader(bytes.NewReader(data), opts)
		slow.slowCSV = true
		var n, last int64
		for {
			e, err := rd.Next()
			e2, err2 := slow.Next()
			if e != e2 || err != err2 {
				t.Fatalf("CSV fast path %+v, %v; encoding/csv %+v, %v", e, err, e2, err2)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err) // bytes.Reader never fails
			}
			n++
			if e.Line <= last {
				t.Fatalf("line %d after %d", e.Line, last)
			}
			last = e.Line
			if e.ID == "" {
				t.Fatalf("line %d: empty ID", e.Line)
			}
			if a, _, err := dnsname.Normalize(e.Domain); err != nil || a != e.Domain {
				t.Fatalf("line %d: domain %q is not in normal form (%q, %v)", e.Line, e.Domain, a, err)
			}
			if keep != (e.Address != "") || (keep && !strings.HasSuffix(e.Address, "@"+e.Domain)) {
				t.Fatalf("line %d: Address %q with KeepAddresses %v", e.Line, e.Address, keep)
			}
		}
		st := rd.Stats()
		if st2 := slow.Stats(); !reflect.DeepEqual(st, st2) {
			t.Fatalf("CSV fast path stats %+v; encoding/csv %+v", st, st2)
		}
		lines := int64(bytes.Count(data, []byte("\n")))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		if st.Lines != lines {
			t.Fatalf("Lines = %d, want %d", st.Lines, lines)
		}
		if st.OK != n || st.OK+st.Bad+st.Skipped != st.Lines || last > st.Lines {
			t.Fatalf("inconsistent stats %+v with %d entries", st, n)
		}
		var bad int64
		for reason, c := range st.ByReason {
			if !slices.Contains(Reasons, reason) {
				t.Fatalf("unknown reason %q", reason)
			}
			l := st.BadLines[reason]
			if c <= 0 || len(l) != int(min(c, 5)) || !slices.IsSorted(l) || l[len(l)-1] > st.Lines || l[0] < 1 {
				t.Fatalf("reason %s: count %d, lines %v", reason, c, l)
			}
			bad += c
		}
		if bad != st.Bad || len(st.BadLines) != len(st.ByReason) {
			t.Fatalf("ByReason sums to %d, Bad = %d", bad, st.Bad)
		}
	})
}
