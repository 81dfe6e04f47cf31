package txtfield

import "testing"

// TestLexer reads a record's fields the way mtasts and tlsrpt do and checks
// that offsets in errors count from the record's start.
func TestLexer(t *testing.T) {
	l := &Lexer{S: " ;\tid=20260101 ; ext.x-1=a:b ;", Base: 7}
	var got []string
	err := l.Fields(func(k string) error {
		v, err := l.Value()
		got = append(got, k+"="+v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != "id=20260101" || got[1] != "ext.x-1=a:b" {
		t.Errorf("fields %q", got)
	}

	for _, tc := range []struct {
		in   string
		name bool // the error is the name's, not the value's
		want string
	}{
		{"=x", true, "expected field name at offset 7"},
		{"_a=x", true, "expected field name at offset 7"},
		{"a x", true, "expected \"=\" after field name at offset 8"},
		{"a=", false, "empty or invalid value at offset 9"},
		{"a=;", false, "empty or invalid value at offset 9"},
		{"abcdefghijabcdefghijabcdefghijabc=x", true, "expected \"=\" after field name at offset 39"},
	} {
		l := &Lexer{S: tc.in, Base: 7}
		_, err := l.Name()
		if !tc.name && err == nil {
			_, err = l.Value()
		}
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %q", tc.in, err, tc.want)
		}
	}
	if l := (&Lexer{S: "  x"}); l.Delim() || l.O != 0 {
		t.Errorf("Delim consumed %d bytes without a \";\"", l.O)
	}
	if err := (&Lexer{S: " a=b", Base: 7}).Fields(func(string) error { return nil }); err == nil || err.Error() != "expected \";\" at offset 7" {
		t.Errorf("a field without a delimiter: %v", err)
	}
}
