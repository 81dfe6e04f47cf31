package mtasts

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
		// RFC 8461 §3.1 example.
		{"v=STSv1; id=20160831085700Z;", Record{Version: "STSv1", ID: "20160831085700Z"}},
		{"v=STSv1;id=abc", Record{Version: "STSv1", ID: "abc"}},
		{"v=STSv1 ;\tid=abc ; ", Record{Version: "STSv1", ID: "abc"}},
		{"v=STSv1; id=" + strings.Repeat("a", 32), Record{Version: "STSv1", ID: strings.Repeat("a", 32)}},
		{"v=STSv1; ext=a:b/c; id=1; x-y.z_=!", Record{Version: "STSv1", ID: "1", Extensions: []Pair{{"ext", "a:b/c"}, {"x-y.z_", "!"}}}},
		// "ID" is case-sensitively not "id": an extension.
		{"v=STSv1; ID=x; id=y", Record{Version: "STSv1", ID: "y", Extensions: []Pair{{"ID", "x"}}}},
		// RFC 8461 §3.2: duplicates of non-repeated fields: only the first counts.
		{"v=STSv1; id=first; id=second", Record{Version: "STSv1", ID: "first"}},
		{"v=STSv1; id=first; id=!notanid", Record{Version: "STSv1", ID: "first"}},
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
		"v=STSv1",
		"v=STSv1;",
		"v=STSv1; ",
		" v=STSv1; id=abc",    // leading space
		"v=STSv1; id=abc ",    // trailing space without ";"
		"V=STSv1; id=abc",     // case-sensitive
		"v=STSv2; id=abc",     // other version
		"v=STSv1 id=abc",      // missing delimiter
		"v=STSv1; id=",        // empty id
		"v=STSv1; id=abc-def", // id: letters and digits only
		"v=STSv1; id=abc def", // space inside value
		"v=STSv1; id=" + strings.Repeat("a", 33),
		"v=STSv1; ext=val",       // missing id
		"v=STSv1; ;id=abc",       // empty field
		"v=STSv1; id=abc; =x",    // empty name
		"v=STSv1; _x=1; id=abc",  // name must start with alnum
		"v=STSv1; id=abc; ext==", // "=" not allowed in value
		"v=STSv1; id=abc; ext=\x7f",
		"v=STSv1; id=abc; " + strings.Repeat("k", 33) + "=v",
		"id=abc; v=STSv1", // version must come first
	}
	for _, txt := range bad {
		r, err := ParseRecord(txt)
		if !errors.Is(err, ErrRecordSyntax) {
			t.Errorf("ParseRecord(%q) = %+v, %v; want ErrRecordSyntax", txt, r, err)
		}
	}
}

func TestSelectRecord(t *testing.T) {
	t.Parallel()
	r, err := SelectRecord([]string{"v=spf1 -all", "v=STSv1; id=abc", "v=STSv10; id=x", "hello"})
	if err != nil || r.ID != "abc" {
		t.Fatalf("SelectRecord: %+v, %v", r, err)
	}
	if _, err := SelectRecord(nil); !errors.Is(err, ErrNoRecord) {
		t.Errorf("no records: %v, want ErrNoRecord", err)
	}
	if _, err := SelectRecord([]string{"v=spf1 -all", "V=STSv1; id=a", " v=STSv1; id=a"}); !errors.Is(err, ErrNoRecord) {
		t.Errorf("no sts records: %v, want ErrNoRecord", err)
	}
	if _, err := SelectRecord([]string{"v=STSv1; id=a", "v=STSv1; id=b"}); !errors.Is(err, ErrMultipleRecords) {
		t.Errorf("two records: %v, want ErrMultipleRecords", err)
	}
	// Records that do not match the grammar are discarded before counting
	// (RFC 8461 §3.1): one valid record beside invalid ones is the record.
	for _, txts := range [][]string{
		{"v=STSv1; id=a", "v=STSv1; id=!"},
		{"v=STSv1; id=a;", "v=STSv1"},
		{"v=STSv1", "v=STSv1; id=a"},
	} {
		if r, err := SelectRecord(txts); err != nil || r.ID != "a" {
			t.Errorf("SelectRecord(%q) = %+v, %v; want id a", txts, r, err)
		}
	}
	if _, err := SelectRecord([]string{"v=STSv1; id=a-b"}); !errors.Is(err, ErrRecordSyntax) {
		t.Errorf("bad record: %v, want ErrRecordSyntax", err)
	}
	if _, err := SelectRecord([]string{"v=STSv1"}); !errors.Is(err, ErrRecordSyntax) {
		t.Errorf("bare version: %v, want ErrRecordSyntax", err)
	}
}

// RFC 8461 §3.2 example policy.
const rfcPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"

func TestParsePolicy(t *testing.T) {
	t.Parallel()
	want := Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800}
	good := []struct {
		name string
		in   string
		want Policy
	}{
		{"rfc crlf", rfcPolicy, want},
		{"lf", strings.ReplaceAll(rfcPolicy, "\r\n", "\n"), want},
		{"mixed line ends, no final newline", "version: STSv1\nmode: enforce\r\nmx: mail.example.com\nmx: *.example.net\r\nmx: backupmx.example.com\nmax_age: 604800", want},
		{"whitespace", "version:STSv1 \t\nmode:\tenforce\nmx:   MAIL.Example.COM\nmx: *.EXAMPLE.net\nmx: backupmx.example.com  \nmax_age: 604800\t", want},
		{"order free", "max_age: 604800\nmx: mail.example.com\nmx: *.example.net\nmode: enforce\nmx: backupmx.example.com\nversion: STSv1\n", want},
		{"duplicates first wins", "version: STSv1\nversion: STSv2\nmode: enforce\nmode: bogus\nmax_age: 604800\nmax_age: 99999999999\nmx: mail.example.com\nmx: *.example.net\nmx: backupmx.example.com\n", want},
		{"mode none without mx", "version: STSv1\nmode: none\nmax_age: 0\n", Policy{Version: "STSv1", Mode: ModeNone}},
		{"testing", "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 31557600\n", Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"a.example"}, MaxAge: 31557600}},
		{"extensions kept", "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400\nfoo: bar baz = ; x\nMode: ignored\nx_1: héllo\n", Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"a.example"}, MaxAge: 86400, Extensions: []Pair{{"foo", "bar baz = ; x"}, {"Mode", "ignored"}, {"x_1", "héllo"}}}},
		{"leading zeros", "version: STSv1\nmode: none\nmax_age: 0000000086\n", Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 86}},
	}
	for _, tc := range good {
		p, err := ParsePolicy([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(*p, tc.want) {
			t.Errorf("%s: got %+v, want %+v", tc.name, *p, tc.want)
		}
	}

	base := "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n"
	bad := []struct{ name, in string }{
		{"empty", ""},
		{"only newline", "\n"},
		{"missing version", "mode: enforce\nmx: a.example\nmax_age: 86400\n"},
		{"missing mode", "version: STSv1\nmx: a.example\nmax_age: 86400\n"},
		{"missing max_age", "version: STSv1\nmode: enforce\nmx: a.example\n"},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 86400\n"},
		{"testing without mx", "version: STSv1\nmode: testing\nmax_age: 86400\n"},
		{"wrong version", "version: STSv2\nmode: none\nmax_age: 1\n"},
		{"version case", "version: stsv1\nmode: none\nmax_age: 1\n"},
		{"Version key case", "Version: STSv1\nmode: none\nmax_age: 1\n"},
		{"mode case", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n"},
		{"unknown mode", "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n"},
		{"max_age too big", "version: STSv1\nmode: none\nmax_age: 31557601\n"},
		{"max_age 11 digits", "version: STSv1\nmode: none\nmax_age: 00000000001\n"},
		{"max_age negative", "version: STSv1\nmode: none\nmax_age: -1\n"},
		{"max_age float", "version: STSv1\nmode: none\nmax_age: 1.5\n"},
		{"max_age empty", "version: STSv1\nmode: none\nmax_age:\n"},
		{"space before colon", "version : STSv1\nmode: none\nmax_age: 1\n"},
		{"no colon", base + "garbage\n"},
		{"blank line inside", "version: STSv1\n\nmode: none\nmax_age: 1\n"},
		{"leading space", " version: STSv1\nmode: none\nmax_age: 1\n"},
		{"bare CR line end", "version: STSv1\rmode: none\rmax_age: 1\r"},
		{"mx trailing dot", "version: STSv1\nmode: enforce\nmx: a.example.\nmax_age: 1\n"},
		{"mx wildcard middle", "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n"},
		{"mx bare star", "version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n"},
		{"mx star label", "version: STSv1\nmode: enforce\nmx: *a.example\nmax_age: 1\n"},
		{"mx ip literal", "version: STSv1\nmode: enforce\nmx: [192.0.2.1]\nmax_age: 1\n"},
		{"mx underscore", "version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n"},
		{"mx hyphen end", "version: STSv1\nmode: enforce\nmx: a-.example\nmax_age: 1\n"},
		{"mx unicode", "version: STSv1\nmode: enforce\nmx: bücher.example\nmax_age: 1\n"},
		{"mx long label", "version: STSv1\nmode: enforce\nmx: " + strings.Repeat("a", 64) + ".example\nmax_age: 1\n"},
		{"mx empty label", "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n"},
		{"ext control char", base + "x: a\x01b\n"},
		{"ext tab inside", base + "x: a\tb\n"},
		{"ext invalid utf8", base + "x: a\xffb\n"},
		{"ext empty", base + "x:\n"},
		{"key too long", base + strings.Repeat("k", 33) + ": v\n"},
	}
	for _, tc := range bad {
		p, err := ParsePolicy([]byte(tc.in))
		if !errors.Is(err, ErrPolicySyntax) {
			t.Errorf("%s: got %+v, %v; want ErrPolicySyntax", tc.name, p, err)
		}
	}

	big := []byte(base + "x: " + strings.Repeat("a", MaxPolicySize) + "\n")
	if _, err := ParsePolicy(big); !errors.Is(err, ErrPolicyTooLarge) {
		t.Errorf("too large: %v, want ErrPolicyTooLarge", err)
	}
	exact := []byte(base + "x: ")
	exact = append(exact, strings.Repeat("a", MaxPolicySize-len(exact))...)
	if _, err := ParsePolicy(exact); err != nil {
		t.Errorf("exactly %d bytes: %v", len(exact), err)
	}
}

func TestMatchMX(t *testing.T) {
	t.Parallel()
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.Example.COM.", true},
		{"mail.example.com..", false},
		{"example.com", false},
		{"x.mail.example.com", false},
		{"a.example.net", true},
		{"A.EXAMPLE.NET.", true},
		{"a.b.example.net", false},
		{"example.net", false},
		{".example.net", false},
		{"aexample.net", false},
		{"a.example.net.evil", false},
		{"", false},
		{".", false},
	}
	for _, tc := range tests {
		if got := p.MatchMX(tc.host); got != tc.want {
			t.Errorf("MatchMX(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if (&Policy{}).MatchMX("a.example") {
		t.Error("empty policy matched")
	}
	// A malformed pattern (only possible when the Policy was built by hand)
	// never matches.
	if (&Policy{MX: []string{"*", "*example.net"}}).MatchMX("a.example.net") {
		t.Error("malformed pattern matched")
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1; id=abc; ext=val")
	f.Add("v=STSv1 ; id=abc ;")
	f.Add("v=STSv1; id=")
	f.Add("v=STSv1")
	f.Fuzz(func(t *testing.T, txt string) {
		r, err := ParseRecord(txt)
		if err != nil {
			if !errors.Is(err, ErrRecordSyntax) {
				t.Fatalf("error %v does not wrap ErrRecordSyntax", err)
			}
			return
		}
		if !validID(r.ID) || r.Version != "STSv1" {
			t.Fatalf("accepted record with bad id or version: %+v", r)
		}
		if sel, err := SelectRecord([]string{txt, "v=spf1 -all"}); err != nil || sel.ID != r.ID {
			t.Fatalf("SelectRecord disagrees with ParseRecord: %+v, %v", sel, err)
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(rfcPolicy))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: *.example.net\nmax_age: 86400\nfoo: bar\n"))
	f.Add([]byte("version: STSv1\nmode: enforce\nmax_age: 31557601\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if !errors.Is(err, ErrPolicySyntax) && !errors.Is(err, ErrPolicyTooLarge) {
				t.Fatalf("error %v wraps neither ErrPolicySyntax nor ErrPolicyTooLarge", err)
			}
			return
		}
		if p.Version != "STSv1" || !p.Mode.Valid() || p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("accepted invalid policy %+v", p)
		}
		if p.Mode != ModeNone && len(p.MX) == 0 {
			t.Fatalf("accepted %s policy without mx", p.Mode)
		}
		for _, mx := range p.MX {
			if mx != strings.ToLower(mx) {
				t.Fatalf("mx %q not lower case", mx)
			}
			host := strings.TrimPrefix(mx, "*.")
			if strings.HasPrefix(mx, "*.") {
				host = "x." + host
			}
			if !p.MatchMX(host) {
				t.Fatalf("pattern %q does not match %q", mx, host)
			}
		}
	})
}
