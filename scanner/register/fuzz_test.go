package register

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{
		"example.org", "Example.ORG.", "BÜCHER.example", "例え.テスト", "例え。テスト。", "xn--bcher-kva.example",
		"xn--abc.org", "ab--c.org", "-a.org", "a..b", "[192.0.2.1]", "192.0.2.1", "a.123", "\xff", ".", "",
		"ＥＸＡＭＰＬＥ．ｏｒｇ", "straße.de", "a\u200db.org", "مثال.إختبار", strings.Repeat("a", 64) + ".org",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ascii, unicode, err := NormalizeDomain(s)
		if err != nil {
			if ascii != "" || unicode != "" {
				t.Fatalf("result %q, %q with error %v", ascii, unicode, err)
			}
			if !errors.Is(err, ErrEmptyDomain) && !errors.Is(err, ErrDomainTooLong) && !errors.Is(err, ErrInvalidDomain) &&
				!errors.Is(err, ErrAddressLiteral) && !errors.Is(err, ErrInvalidUTF8) {
				t.Fatalf("error %v is not one of the sentinels", err)
			}
			return
		}
		checkDomain(t, ascii)
		if unicode == ascii {
			t.Fatalf("unicode %q repeats ascii", unicode)
		}
		// Idempotent: the A-label form normalises to itself, with the same U-label form.
		a2, u2, err := NormalizeDomain(ascii)
		if err != nil || a2 != ascii || u2 != unicode {
			t.Fatalf("NormalizeDomain(%q) = %q, %q, %v; want %q, %q", ascii, a2, u2, err, ascii, unicode)
		}
		if unicode != "" {
			if a3, _, err := NormalizeDomain(unicode); err != nil || a3 != ascii {
				t.Fatalf("NormalizeDomain(%q) = %q, %v; want %q", unicode, a3, err, ascii)
			}
		}
		// The fast path agrees with the IDNA path.
		if fa, ok := fastASCII(strings.TrimSuffix(strings.TrimSpace(s), ".")); ok {
			sa, su, err := slowNormalize(strings.TrimSpace(s))
			if err != nil || sa != fa || su != "" {
				t.Fatalf("fast path %q, IDNA path %q, %q, %v", fa, sa, su, err)
			}
		}
	})
}

// checkDomain checks the form of a normalised A-label domain.
func checkDomain(t *testing.T, d string) {
	t.Helper()
	if d == "" || len(d) > 253 || strings.HasSuffix(d, ".") {
		t.Fatalf("bad domain %q", d)
	}
	for _, l := range strings.Split(d, ".") {
		if l == "" || len(l) > 63 {
			t.Fatalf("domain %q has a bad label", d)
		}
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c >= 0x80 || ('A' <= c && c <= 'Z') {
			t.Fatalf("domain %q is not lower-case ASCII", d)
		}
	}
}

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
			checkDomain(t, e.Domain)
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
