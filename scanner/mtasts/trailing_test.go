package mtasts

import "testing"

// Policy files that end with extra blank lines are accepted; a blank line
// between fields is not.
func TestParsePolicyTrailingBlankLines(t *testing.T) {
	for _, s := range []string{
		"version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n\n",
		"version: STSv1\r\nmode: enforce\r\nmx: mx.example.com\r\nmax_age: 86400\r\n\r\n\r\n",
	} {
		p, err := ParsePolicy([]byte(s))
		if err != nil || p.Mode != ModeEnforce || len(p.MX) != 1 {
			t.Errorf("%q: %v, %+v", s, err, p)
		}
	}
	if _, err := ParsePolicy([]byte("version: STSv1\n\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n")); err == nil {
		t.Error("a blank line between fields was accepted")
	}
	if _, err := ParsePolicy([]byte("\n\r\n")); err == nil {
		t.Error("a policy of blank lines was accepted")
	}
}
