package tlsrpt

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	t.Parallel()
	good := []struct {
		txt  string
		want Record
	}{
		// RFC 8460 §3 examples.
		{"v=TLSRPTv1;rua=mailto:reports@example.com", Record{Version: "TLSRPTv1", RUA: []string{"mailto:reports@example.com"}}},
		{"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", Record{Version: "TLSRPTv1", RUA: []string{"https://reporting.example.com/v1/tlsrpt"}}},
		{"v=TLSRPTv1; rua=mailto:tlsrpt@example.com,https://r.example.net/x?a=b%2Cc", Record{Version: "TLSRPTv1", RUA: []string{"mailto:tlsrpt@example.com", "https://r.example.net/x?a=b%2Cc"}}},
		{"v=TLSRPTv1 ;\trua=mailto:a@example.com \t, mailto:b@example.com ; ", Record{Version: "TLSRPTv1", RUA: []string{"mailto:a@example.com", "mailto:b@example.com"}}},
		{"v=TLSRPTv1; rua=mailto:a@example.com; ext=1:2; x-y=z", Record{Version: "TLSRPTv1", RUA: []string{"mailto:a@example.com"}, Extensions: []Pair{{"ext", "1:2"}, {"x-y", "z"}}}},
		{"v=TLSRPTv1; rua=mailto:a@example.com; rua=https://r.example", Record{Version: "TLSRPTv1", RUA: []string{"mailto:a@example.com", "https://r.example"}}},
		// An unknown scheme is kept as long as one URI is usable.
		{"v=TLSRPTv1; rua=ftp://x.example/,MAILTO:a@example.com", Record{Version: "TLSRPTv1", RUA: []string{"ftp://x.example/", "MAILTO:a@example.com"}}},
		{"v=TLSRPTv1; RUA=x; rua=mailto:a@example.com", Record{Version: "TLSRPTv1", RUA: []string{"mailto:a@example.com"}, Extensions: []Pair{{"RUA", "x"}}}},
	}
	for _, tc := range good {
		r, err := ParseRecord(tc.txt)
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tc.txt, err)
			continue
		}
		if !reflect.DeepEqual(*r, tc.want) {
			t.Errorf("ParseRecord(%q) = %+v, want %+v", tc.txt, *r, tc.want)
		}
	}
	bad := []string{
		"",
		"v=TLSRPTv1",
		"v=TLSRPTv1;",
		"v=tlsrptv1; rua=mailto:a@example.com",
		" v=TLSRPTv1; rua=mailto:a@example.com",
		"v=TLSRPTv1 rua=mailto:a@example.com",
		"v=TLSRPTv1; rua=",
		"v=TLSRPTv1; rua=mailto:a@example.com,",
		"v=TLSRPTv1; rua=mailto:a@example.com trailing",
		"v=TLSRPTv1; rua=mailto:a!b@example.com", // "!" must be encoded
		"v=TLSRPTv1; rua=reports@example.com",    // not an absolute URI
		"v=TLSRPTv1; rua=mailto:",
		"v=TLSRPTv1; rua=mailto:example.com",
		"v=TLSRPTv1; rua=https:///path",
		"v=TLSRPTv1; rua=http://r.example/",
		"v=TLSRPTv1; rua=https://r.example/%zz",
		"v=TLSRPTv1; rua=mailto:a@example.com; ext=",
		"v=TLSRPTv1; rua=mailto:a@example.com; =x",
		"v=TLSRPTv1; ext=1",
		"v=TLSRPTv1; rua=mailto:a@example.com; " + strings.Repeat("k", 33) + "=v",
		"v=TLSRPTv1; rua=mailto:a@exämple.com",
	}
	for _, txt := range bad {
		r, err := ParseRecord(txt)
		if !errors.Is(err, ErrRecordSyntax) {
			t.Errorf("ParseRecord(%q) = %+v, %v; want ErrRecordSyntax", txt, r, err)
			continue
		}
		// Errors never carry the reporting addresses.
		if strings.Contains(err.Error(), "@") {
			t.Errorf("ParseRecord(%q): error %q contains an address", txt, err)
		}
	}
}

func TestSelectRecord(t *testing.T) {
	t.Parallel()
	r, err := SelectRecord([]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv10; rua=mailto:b@example.com"})
	if err != nil || len(r.RUA) != 1 || r.RUA[0] != "mailto:a@example.com" {
		t.Fatalf("SelectRecord: %+v, %v", r, err)
	}
	if _, err := SelectRecord(nil); !errors.Is(err, ErrNoRecord) {
		t.Errorf("none: %v", err)
	}
	if _, err := SelectRecord([]string{"v=STSv1; id=1", "V=TLSRPTv1; rua=mailto:a@example.com"}); !errors.Is(err, ErrNoRecord) {
		t.Errorf("no tlsrpt record: %v", err)
	}
	if _, err := SelectRecord([]string{"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1;rua=https://r.example"}); !errors.Is(err, ErrMultipleRecords) {
		t.Errorf("two: %v", err)
	}
	if _, err := SelectRecord([]string{"v=TLSRPTv1; rua=a@example.com"}); !errors.Is(err, ErrRecordSyntax) {
		t.Errorf("bad: %v", err)
	}
}

func FuzzTLSRPTRecord(f *testing.F) {
	f.Add("v=TLSRPTv1;rua=mailto:reports@example.com")
	f.Add("v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt")
	f.Add("v=TLSRPTv1; rua=mailto:a@example.com, https://r.example/x; ext=1;")
	f.Add("v=TLSRPTv1; rua=")
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			if !errors.Is(err, ErrRecordSyntax) {
				t.Fatalf("error %v does not wrap ErrRecordSyntax", err)
			}
			return
		}
		if r.Version != "TLSRPTv1" || len(r.RUA) == 0 {
			t.Fatalf("accepted %+v", r)
		}
		usable := false
		for _, u := range r.RUA {
			if u == "" || strings.ContainsAny(u, ",;! \t") {
				t.Fatalf("bad uri %q accepted", u)
			}
			usable = usable || usableURI(u)
		}
		if !usable {
			t.Fatalf("no usable uri in %+v", r)
		}
		if sel, err := SelectRecord([]string{"v=spf1 -all", txt}); err != nil || !reflect.DeepEqual(sel, r) {
			t.Fatalf("SelectRecord disagrees: %+v, %v", sel, err)
		}
	})
}
