package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadNetstring(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string // payloads read before the error
		err  error
	}{
		{"", nil, io.EOF},
		{"0:,", []string{""}, io.EOF},
		{"22:tlspolicy example.test,", []string{"tlspolicy example.test"}, io.EOF},
		{"3:abc,3:def,", []string{"abc", "def"}, io.EOF},
		{"3:abc", nil, io.ErrUnexpectedEOF},
		{"3:abc;", nil, ErrNetstring},
		{"12", nil, io.ErrUnexpectedEOF},
		{":abc,", nil, ErrNetstring},
		{"03:abc,", nil, ErrNetstring},
		{"-3:abc,", nil, ErrNetstring},
		{"3x:abc,", nil, ErrNetstring},
		{"10001:", nil, ErrNetstringTooLong},
		{"99999999999999999999999:", nil, ErrNetstringTooLong},
		{"1:a,2:b", []string{"a"}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		r := bufio.NewReader(strings.NewReader(tt.in))
		var got []string
		var err error
		for {
			var p []byte
			p, err = readNetstring(r, MaxNetstring, nil)
			if err != nil {
				break
			}
			got = append(got, string(p))
		}
		if !errors.Is(err, tt.err) || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("%q: got %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestAppendNetstring(t *testing.T) {
	t.Parallel()
	if got := string(appendNetstring(nil, "OK", " ", "dane-only")); got != "12:OK dane-only," {
		t.Errorf("got %q", got)
	}
	if got := string(appendNetstring(nil, "NOTFOUND", " ", "")); got != "9:NOTFOUND ," {
		t.Errorf("got %q", got)
	}
}

// FuzzNetstring: the reader never panics, never returns more than the bound,
// and every payload it returns re-encodes to exactly the bytes it consumed.
func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"0:,", "22:tlspolicy example.test,", "3:abc,3:def,", "03:abc,", "10001:", "3:ab", "1:a;"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		var consumed []byte
		for {
			p, err := readNetstring(r, MaxNetstring, nil)
			if err != nil {
				if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!errors.Is(err, ErrNetstring) && !errors.Is(err, ErrNetstringTooLong) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if len(p) > MaxNetstring {
				t.Fatalf("payload of %d bytes", len(p))
			}
			consumed = appendNetstring(consumed, string(p))
			if !bytes.HasPrefix(data, consumed) {
				t.Fatalf("re-encoded %q is not a prefix of the input %q", consumed, data)
			}
		}
	})
}
