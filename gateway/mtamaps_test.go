package gateway

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

// TestWriteMapSendmailParents: sendmail applies TLS_Rcpt:example.org to
// sub.example.org too, so a scanned subdomain without a policy gets "OK"
// (no requirement); Exim and Postfix entries stay exact; the sendmail
// entry for dane follows MapOptions; order is by domain.
func TestWriteMapSendmailParents(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	at := testNow.Add(-time.Hour)
	rs := []result.Result{
		{Domain: "example.org", Verdict: result.Verified, ScannedAt: at},
		{Domain: "sub.example.org", Verdict: result.Plaintext, ScannedAt: at},
		{Domain: "deep.sub.example.org", Verdict: result.Partial, ScannedAt: at},
		{Domain: "dane.example.org", Verdict: result.DANE, ScannedAt: at},
		{Domain: "lone.example.net", Verdict: result.Plaintext, ScannedAt: at},
		{Domain: "enc.example.net", Verdict: result.Encrypted, ScannedAt: at},
	}
	if err := st.SaveResults(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	s := newUnloadedServer(t, st)
	if _, err := s.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	write := func(format string, o MapOptions) string {
		var b bytes.Buffer
		if _, err := s.WriteMap(&b, format, []string{"head"}, o); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	if got, want := write(FormatSendmail, MapOptions{}), "# head\n"+
		"TLS_Rcpt:dane.example.org\tTEMP+ENCR:128\n"+
		"TLS_Rcpt:deep.sub.example.org\tOK\n"+
		"TLS_Rcpt:enc.example.net\tTEMP+ENCR:128\n"+
		"TLS_Rcpt:example.org\tTEMP+VERIFY:128\n"+
		"TLS_Rcpt:sub.example.org\tOK\n"; got != want {
		t.Errorf("sendmail:\n%s\nwant\n%s", got, want)
	}
	if got := write(FormatSendmail, MapOptions{SendmailDANEVerify: true}); !strings.Contains(got, "TLS_Rcpt:dane.example.org\tTEMP+VERIFY:128\n") {
		t.Errorf("sendmail with SendmailDANEVerify:\n%s", got)
	}
	if got, want := write(FormatExim, MapOptions{}), "# head\ndane.example.org: dane\nenc.example.net: encrypt\nexample.org: verify\n"; got != want {
		t.Errorf("exim:\n%s\nwant\n%s", got, want)
	}
	if _, err := s.WriteMap(&bytes.Buffer{}, "qmail", nil, MapOptions{}); err == nil {
		t.Error("unknown format accepted")
	}
	for p, want := range map[string][2]string{
		"dane-only": {"TEMP+ENCR:128", "dane"},
		"secure match=.mx.example.net servername=hostname": {"TEMP+VERIFY:128", "secure"},
		"verify":  {"TEMP+VERIFY:128", "verify"},
		"encrypt": {"TEMP+ENCR:128", "encrypt"},
		"may":     {"", ""},
		"":        {"", ""},
	} {
		if got := SendmailAccess(p, MapOptions{}); got != want[0] {
			t.Errorf("SendmailAccess(%q) = %q, want %q", p, got, want[0])
		}
		if got := EximPolicy(p); got != want[1] {
			t.Errorf("EximPolicy(%q) = %q, want %q", p, got, want[1])
		}
	}
}
