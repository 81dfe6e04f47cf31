package gateway

import (
	"testing"
	"time"

	"github.com/tlsready/tlsready/scanner/result"
)

func TestSTSMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p    *result.STSPolicy
		want string
	}{
		{nil, ""},
		{&result.STSPolicy{Mode: "testing", MX: []string{"mx.example"}}, ""},
		{&result.STSPolicy{Mode: "none", MX: []string{"mx.example"}}, ""},
		{&result.STSPolicy{Mode: "enforce"}, ""},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"mx.example"}}, "mx.example"},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"*.mail.example", "MX.Example."}}, ".mail.example:mx.example"},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"*.bücher.example"}}, ".xn--bcher-kva.example"},
		// Anything that is not a host name could inject Postfix policy syntax.
		{&result.STSPolicy{Mode: "enforce", MX: []string{"mx.example", "evil.example protocols=!TLSv1.2"}}, ""},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"mx.example:other.example"}}, ""},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"*"}}, ""},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"a.*.example"}}, ""},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"**.example"}}, ""},
		{&result.STSPolicy{Mode: "enforce", MX: []string{"mx.example,"}}, ""},
	}
	for _, tt := range tests {
		if got := stsMatch(tt.p); got != tt.want {
			t.Errorf("stsMatch(%+v) = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cfg   Config
		v     result.Verdict
		sts   string
		stale bool
		want  string
	}{
		{Config{}, result.DANE, "", false, "dane-only"},
		{Config{}, result.DANE, ".mx.example", false, "dane-only"}, // MTA-STS never overrides DANE
		{Config{}, result.MTASTS, ".mx.example:mx1.example", false, "secure match=.mx.example:mx1.example servername=hostname"},
		{Config{}, result.MTASTS, "", false, ""},
		{Config{}, result.Verified, "", false, "verify"},
		{Config{VerifiedPolicy: "may"}, result.Verified, "", false, "may"},
		{Config{}, result.Encrypted, "", false, "encrypt"},
		{Config{EncryptedPolicy: "may"}, result.Encrypted, "", false, "may"},
		{Config{}, result.Verified, "", true, ""},
		{Config{}, result.DANE, "", true, ""},
		{Config{}, result.Broken, ".mx.example", false, ""},
		{Config{}, result.Partial, "", false, ""},
		{Config{}, result.Plaintext, "", false, ""},
		{Config{}, result.NoMail, "", false, ""},
		{Config{}, result.Unreachable, "", false, ""},
		{Config{}, result.DNSError, "", false, ""},
	}
	st := openTestStore(t)
	for _, c := range cases {
		c.cfg.Store = st
		s, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		got := s.policy(record{Verdict: c.v, STSMatch: c.sts, ScannedAt: time.Now()}, c.stale)
		if got != c.want {
			t.Errorf("%+v %s sts=%q stale=%v: %q, want %q", c.cfg.VerifiedPolicy+"/"+c.cfg.EncryptedPolicy, c.v, c.sts, c.stale, got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	st := openTestStore(t)
	for _, cfg := range []Config{
		{},
		{Store: st, VerifiedPolicy: "encrypt"},
		{Store: st, EncryptedPolicy: "verify"},
		{Store: st, EncryptedPolicy: "none"},
		{Store: st, MaxBatch: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
